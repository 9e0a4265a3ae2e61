# One image, every role: `docker run -e ROLE=http -e REDIS_URL=… -e KAFKA_BROKERS=… svc`.
# Stage 1 compiles mod.ts (with the tinypool worker files) into one binary; stage 2 runs it.
FROM denoland/deno:2.9.6 AS build
WORKDIR /src
COPY deno.json deno.lock ./
COPY mod.ts ./
COPY src ./src
COPY workers ./workers
RUN deno install --frozen \
 && deno compile -A --frozen --include workers/ --include src/ --output /out/svc mod.ts

FROM gcr.io/distroless/cc-debian12:nonroot
WORKDIR /app
COPY --from=build /out/svc /app/svc
ENV ROLE=all PORT=8080
EXPOSE 8080
USER nonroot
ENTRYPOINT ["/app/svc"]
