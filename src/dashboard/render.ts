/**
 * @module The dashboard's HTML, rendered on the server: the page shell and the live sections
 * that server-sent events replace.
 */
import { html, raw } from "hono/html";
import type { HtmlEscapedString } from "hono/utils/html";
import type { Snapshot } from "./snapshot.ts";

type Html = HtmlEscapedString | Promise<HtmlEscapedString>;

const _pct = (x: number | null) => (x === null ? "" : `${Math.round(x * 100)}%`);
const _time = (iso: string | null | undefined) => (iso ? iso.replace("T", " ").slice(0, 19) : "—");

function _button(label: string, method: string, url: string, confirm = false): Html {
  return html`
    <button data-method="${method}" data-url="${url}" ${confirm
      ? raw(" data-confirm")
      : ""}>${label}</button>
  `;
}

function _progress(value: number | null): Html {
  return value === null
    ? html`<span class="muted">—</span>`
    : html`<progress max="1" value="${value}"></progress> ${_pct(value)}`;
}

function _tasks(s: Snapshot): Html {
  return html`<section id="tasks"><h2>Async tasks</h2>
  ${
    s.tasks.map(({ status, items }) =>
      html`<h3>${status} <span class="count">${items.length}${
        items.length >= 8 ? "+" : ""
      }</span></h3>
    ${
        items.length === 0 ? html`<p class="muted">none</p>` : html`<table>
      <tr><th>refcode</th><th>type</th><th>progress</th><th>attempts</th><th>updated</th><th></th></tr>
      ${
          items.map((t) =>
            html`
              <tr data-refcode="${t.refcode}" data-status="${t.status}">
                <td><code>${t.refcode.slice(0, 12)}…</code></td>
                <td>${t.type}</td>
                <td class="progress">${_progress(t.progress)}</td>
                <td>${t.attempts}</td>
                <td>${_time(t.updated_at)}</td>
                <td>${t.status === "queued" || t.status === "in_progress"
                  ? _button("cancel", "DELETE", `/tasks/${t.refcode}`, true)
                  : ""}
                            ${t.status === "failed"
                              ? _button("retry", "POST", `/tasks/${t.refcode}/retry`)
                              : ""}
                            ${t.error
                              ? html`<span class="error" title="${t.error}">${
                                t.error.slice(0, 60)
                              }</span>`
                              : ""}</td>
              </tr>
            `
          )
        }</table>`
      }`
    )
  }</section>`;
}

function _parallel(s: Snapshot): Html {
  return html`<section id="parallel"><h2>Parallel runs</h2>
  ${
    s.parallel.length === 0 ? html`<p class="muted">none running</p>` : html`<table>
    <tr><th>refcode</th><th>task</th><th>status</th><th>progress</th><th>workers</th><th></th></tr>
    ${
      s.parallel.map((r) =>
        html`
          <tr data-run="${r.refcode}" data-status="${r.status}">
            <td><code>${r.refcode.slice(0, 12)}…</code></td>
            <td>${r.task_id}</td>
            <td>${r.status}</td>
            <td class="progress">${_progress(
              r.progress.total ? r.progress.done / r.progress.total : 0,
            )} ${r.progress.done}/${r.progress.total}</td>
            <td>${r.workers.length} of ${r.worker_count}${r.workers.length
              ? html`
                <span class="muted">${r.workers.join(", ")}</span>
              `
              : ""}</td>
            <td>${r.status === "queued" || r.status === "in_progress"
              ? _button("cancel", "DELETE", `/parallel-tasks/${r.refcode}`, true)
              : ""}</td>
          </tr>
        `
      )
    }</table>`
  }</section>`;
}

function _consumers(s: Snapshot): Html {
  return html`
    <section id="consumers">
      <h2>Consumers</h2>
      <table>
        <tr><th>name</th><th>kind</th><th>topic</th><th>members</th><th>lag</th><th>dead-lettered</th></tr>
        ${s.consumers.map((x) =>
          html`
            <tr data-consumer="${x.name}">
              <td>${x.name}</td>
              <td>${x.kind}</td>
              <td><code>${x.topic}</code></td>
              <td>${x.members.length === 0
                ? html`<span class="muted">none running</span>`
                : x.members.map((m) =>
                  html`<div>${m.instance}${
                    m.in_group ? "" : html`
                      <span class="error">(not in group)</span>
                    `
                  } <span class="muted">partitions ${
                    m.partitions.map((p) => p.partition).join(", ") || "—"
                  }</span></div>`
                )}</td>
              <td>${x.lag}</td>
              <td${x.dead_lettered ? raw(' class="error"') : ""}>${x.dead_lettered}</td></tr>
          `
        )}</table>
    </section>
  `;
}

function _schedules(s: Snapshot): Html {
  return html`
    <section id="schedules">
      <h2>Schedules</h2>
      <table>
        <tr><th>name</th><th>cron</th><th>zone</th><th>next run</th><th>last run</th><th></th></tr>
        ${s.schedules.map((x) =>
          html`
            <tr data-schedule="${x.name}">
              <td>${x.name}${x.enabled ? "" : html`
                <span class="muted">(off)</span>
              `}</td>
              <td><code>${x.cron}</code></td>
              <td>${x.timezone}</td>
              <td>${_time(x.next_run_at)}</td>
              <td>${x.last_run
                ? html`${x.last_run.status} · ${_time(x.last_run.scheduled_at)}`
                : html`<span class="muted">never</span>`}</td>
              <td>${_button("run now", "POST", `/schedules/${encodeURIComponent(x.name)}/run`)}</td>
            </tr>
          `
        )}</table>
    </section>
  `;
}

/**
 * The live part of the page.
 *
 * @param s the snapshot
 * @returns HTML
 */
export function renderSections(s: Snapshot): Html {
  return html`<p class="muted">updated ${_time(s.at)} UTC</p>${_tasks(s)}${_parallel(s)}${
    _schedules(s)
  }${_consumers(s)}`;
}

const STYLE = `body{font:14px system-ui,sans-serif;margin:1.5rem;color:#222}h1{font-size:1.3rem}
h2{font-size:1.1rem;margin-top:1.5rem;border-bottom:1px solid #ddd}h3{font-size:.95rem;margin:.8rem 0 .3rem}
table{border-collapse:collapse;width:100%}td,th{text-align:left;padding:.25rem .5rem;border-bottom:1px solid #eee}
.muted{color:#888}.error{color:#b00}.count{color:#666;font-weight:normal}progress{width:8rem}
#flash{position:fixed;top:.5rem;right:.5rem;background:#333;color:#fff;padding:.4rem .8rem;border-radius:4px;display:none}`;

const SCRIPT = `
const flash = (text) => { const f = document.getElementById("flash"); f.textContent = text; f.style.display = "block"; setTimeout(() => f.style.display = "none", 2500); };
const source = new EventSource("/dashboard/stream");
source.addEventListener("sections", (e) => { document.getElementById("live").innerHTML = e.data; });
source.onerror = () => flash("connection lost, retrying…");
document.addEventListener("click", async (e) => {
  const b = e.target.closest("button[data-url]");
  if (!b) return;
  if (b.hasAttribute("data-confirm") && !confirm(b.textContent + "?")) return;
  // The session cookie (HttpOnly: this script never sees it) counts only with this header.
  const res = await fetch(b.dataset.url, { method: b.dataset.method, headers: { "x-svc-session": "1" } });
  if (b.id === "logout") return location.reload();
  const body = await res.json().catch(() => ({}));
  flash(res.ok ? b.textContent + ": " + (body.status || res.status) : (body.detail || res.statusText));
});`;

function _document(service: string, head: Html | string, body: Html): Html {
  return html`
    <!doctype html>
    <html lang="en">
      <head>
        <meta charset="utf-8">
        <title>${service} dashboard</title>
        ${head}
      </head>
      <body>
        <h1>${service} dashboard</h1>
        ${body}
      </body>
    </html>
  `;
}

/**
 * The whole page, with the first sections already in it.
 *
 * @param service `SERVICE_NAME`, the page's title
 * @param sections the live part, rendered
 * @param options `session`: show a log-out button (with `API_KEYS`)
 * @returns HTML
 */
export function renderPage(
  service: string,
  sections: Html,
  options: { session?: boolean } = {},
): Html {
  return _document(
    service,
    html`
      <meta name="viewport" content="width=device-width, initial-scale=1">
      <style>${raw(STYLE)}</style>
    `,
    html`
      <div id="flash"></div>
      ${options.session
        ? html`<button id="logout" data-url="/dashboard/logout" data-method="POST">Log out</button>`
        : ""}
      <div id="live">${sections}</div>
      <script>${raw(SCRIPT)}</script>
    `,
  );
}

/**
 * The form shown when `API_KEYS` is set and no key came with the request.
 *
 * @param service `SERVICE_NAME`, the page's title
 * @returns HTML
 */
export function renderLogin(service: string): Html {
  return _document(
    service,
    html`<style>body{font:14px system-ui;margin:2rem}</style>`,
    html`
      <form id="f"><label>API key <input id="k" type="password" autocomplete="current-password"></label>
            <button>Open</button></form>
      <script>${raw(LOGIN_SCRIPT)}</script>
    `,
  );
}

const LOGIN_SCRIPT = `document.getElementById("f").onsubmit = async (e) => {
  e.preventDefault();
  const res = await fetch("/dashboard/login", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ key: document.getElementById("k").value }) });
  if (res.ok) location.reload(); else alert("That API key is not valid");
};`;
