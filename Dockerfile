# The realtime server in a container. Build: `docker build -t realtime .`
# Run:   docker run -p 8000:8000 -e JWT_SECRET=… -v realtime-data:/app/data realtime
# Not built or run on the machines this project is developed on (no container
# runtime there); tests/deploy_files_test.ts runs this file's CMD and
# HEALTHCHECK commands with its ENV outside a container.

# Pinned Deno (the version CI tests with). Pin the digest too in production:
# docker pull denoland/deno:debian-2.9.6 && docker inspect --format '{{index .RepoDigests 0}}' …
FROM denoland/deno:debian-2.9.6

WORKDIR /app

# Dependencies first, in their own layer: rebuilt only when deno.json or
# deno.lock change, not on every source edit. --frozen fails the build when
# the lock file does not match deno.json instead of resolving anew.
COPY deno.json deno.lock ./
RUN deno install --frozen

COPY main.ts ./
COPY lib/ lib/
COPY web/ web/
COPY scripts/ scripts/
# Type-checks and caches every module main.ts loads, so the container never
# fetches anything at run time (--cached-only below).
RUN deno cache --frozen main.ts scripts/serve_parallel.ts \
  && mkdir -p /app/data && chown deno:deno /app/data

# The KV database (STORE=kv / BUS=kv) lives in this volume; the rest of the
# image is read-only to the server.
VOLUME ["/app/data"]

ENV PORT=8000 \
    HOSTNAME=0.0.0.0 \
    KV_PATH=/app/data/realtime.kv \
    DENO_ENV=production

# The official image's unprivileged user (uid 1993).
USER deno
EXPOSE 8000

# /healthz answers 200 while the process serves (its body says "degraded"
# when Redis/KV is out: restarting would not cure that, so it is not a failure).
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 \
  CMD deno eval --quiet "const r = await fetch('http://127.0.0.1:' + (Deno.env.get('PORT') ?? '8000') + '/healthz'); Deno.exit(r.status === 200 ? 0 : 1)"

# SIGTERM (docker stop) drains: sockets closed with 1001, then exit. Give it
# more than SHUTDOWN_GRACE_MS (10 s): docker stop --time 15.
STOPSIGNAL SIGTERM
CMD ["deno", "run", "--cached-only", "--unstable-kv", "--allow-net", "--allow-env", "--allow-read", "--allow-write=/app/data", "main.ts"]
