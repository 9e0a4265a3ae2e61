/**
 * @module The process's warm tinypool pool: a fixed number of threads started once, so no
 * chunk pays for a thread's start-up, and a way to stop a running chunk that works on Deno.
 */
import Tinypool from "tinypool";
// In the static module graph, so `deno compile` embeds the thread entry with the program:
// an app's image never has to `--include` the runtime's own files.
import "./thread.ts";

/** After `stop()`, how long a chunk may take to notice its signal before its thread is terminated. */
export const STOP_GRACE_MS = 200;

const THREAD_ENTRY = new URL("./thread.ts", import.meta.url).href;

/** A chunk running on a thread. */
export interface RunningChunk<R = unknown> {
  /** Settles when the thread is done with the chunk. */
  readonly result: Promise<R>;
  /**
   * Stops the chunk: its signal turns aborted at once (the worker returns at its next check);
   * a worker that does not check it has its thread terminated after {@link STOP_GRACE_MS}.
   */
  stop(): void;
}

/** A fixed-size pool of worker threads running the task files' default exports. */
export class ThreadPool {
  /** Threads in the pool (`PARALLEL_MAX_WORKERS`). */
  readonly size: number;
  #pool: Tinypool;
  #busy = 0;

  /**
   * Starts `size` threads now.
   *
   * @param size how many threads
   * @param onError where errors of idle threads go (a thread that died between chunks)
   */
  constructor(size: number, onError: (err: unknown) => void = () => {}) {
    this.size = size;
    this.#pool = new Tinypool({
      filename: THREAD_ENTRY,
      minThreads: size,
      maxThreads: size,
      // With atomics, tinypool's threads block in Atomics.wait and miss messages on Deno: a
      // pool given several tasks at once never answers. Messages cost ~0.1 ms per chunk.
      useAtomics: false,
    });
    this.#pool.on("error", onError);
  }

  /** Threads running a chunk now. */
  get busy(): number {
    return this.#busy;
  }

  /**
   * Starts one chunk on a free thread (callers keep at most `size` running).
   *
   * @param file the task's worker file (`file:` URL string)
   * @param chunk the chunk
   * @returns the running chunk
   */
  start<R = unknown>(file: string, chunk: unknown): RunningChunk<R> {
    const stop = new Int32Array(new SharedArrayBuffer(4));
    const abort = new AbortController();
    let grace: ReturnType<typeof setTimeout> | undefined;
    this.#busy++;
    const result = (this.#pool.run({ file, chunk, stop }, { signal: abort.signal }) as Promise<R>)
      .finally(() => {
        clearTimeout(grace);
        this.#busy--;
      });
    return {
      result,
      stop: () => {
        if (Atomics.exchange(stop, 0, 1) !== 0) return;
        // Tinypool's abort terminates the thread, the only way to stop a worker that ignores its
        // signal. On Deno 2.9 a thread in a synchronous loop survives termination until the loop
        // ends (denoland/deno#35657), which is why the shared flag comes first.
        grace = setTimeout(() => abort.abort(), STOP_GRACE_MS);
      },
    };
  }

  /** Terminates every thread (running chunks reject). */
  async destroy(): Promise<void> {
    await this.#pool.destroy();
  }
}
