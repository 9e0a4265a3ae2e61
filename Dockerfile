# One image, every role: `docker run -e ROLE=http -e REDIS_URL=… -e KAFKA_BROKERS=… svc`.
# Builds any app on the runtime, this repository's example system by default:
#   docker build --build-arg ENTRY=main.ts --build-arg INCLUDE="workers/" -t my-service .
# ENTRY is the program's entry file, so the binary runs exactly what `deno run -A $ENTRY` runs.
# INCLUDE lists (space-separated) what the program loads at run time and no import names: the
# app's parallel-task worker files. The runtime's own thread files (task leases, parallel
# chunks) are imported statically by the runtime, so `deno compile` embeds them unasked.
FROM denoland/deno:2.9.6 AS build
ARG ENTRY=src/example/main.ts
ARG INCLUDE="workers/"
WORKDIR /src
COPY . .
RUN deno install --frozen --entrypoint "$ENTRY" \
 && deno compile -A --frozen $(for p in $INCLUDE; do printf -- '--include %s ' "$p"; done) \
      --output /out/svc "$ENTRY"

FROM gcr.io/distroless/cc-debian12:nonroot
WORKDIR /app
COPY --from=build /out/svc /app/svc
ENV ROLE=all PORT=8080
EXPOSE 8080
USER nonroot
ENTRYPOINT ["/app/svc"]
