# syntax=docker/dockerfile:1
#
# raft-elector image: a bundled, minified entry and its lazily loaded chunks
# (build/bundle.ts) on distroless Node.js 24 (LTS).
#
# Why a bundle and not `npm ci --omit=dev`: an in-cluster member running from
# dist/ + node_modules measured 89 MB RSS (171 MB while it loaded
# @kubernetes/client-node's generated API; the member now has its own small client,
# k8s/kube-http.ts, and uses client-node for types only); the esbuild bundle 86 MB,
# and 81 MB with V8's young generation capped at 1 MiB (--max-semi-space-size=1;
# scavenges of a heap this small take well under a
# millisecond). Code splitting: a single-file bundle holds the source of every
# lazily imported mode whether it runs or not; a `--peers` member measured
# 106 MB from one file and 79 MB split. The runtime image then holds no
# node_modules, no npm and no shell.
#
# test/chart/dockerfile.test.ts runs these RUN/COPY steps in a scratch
# directory and starts the result, so keep RUN commands relative to WORKDIR.

# Build stage: install exactly the lock file, type-check and compile, bundle.
# Pinned by digest (the digests are the ones public Dockerfiles use for these tags;
# this workplace cannot reach a registry to re-check them).
FROM node:24.11.1-bookworm-slim@sha256:48abc13a19400ca3985071e287bd405a1d99306770eb81d61202fb6b65cf0b57 AS build
WORKDIR /src
COPY package.json package-lock.json ./
# --ignore-scripts: no dependency runs code at install time.
RUN npm ci --no-audit --no-fund --ignore-scripts
COPY tsconfig.json tsconfig.build.json ./
COPY raft ./raft
COPY cluster ./cluster
COPY k8s ./k8s
COPY api ./api
COPY cmd ./cmd
COPY build ./build
RUN npm run build
# build/bundle.ts: esbuild with code splitting (what runs lazily stays in its own
# chunk, unloaded until used), the `require` banner the CommonJS dependencies need,
# the packages' license comments at the end of each file, and THIRD_PARTY_LICENSES
# from the LICENSE files of every package the metafile says the bundle took from.
RUN node build/bundle.ts image/app/dist image/meta.json image/app/THIRD_PARTY_LICENSES \
 && mkdir -p image/var/lib/raft-elector
# The data-dir lock's native binding for this build's arch, beside the bundle, where
# cluster/data-dir-lock.ts looks first (its own loader cannot find it inside a bundle).
RUN cp "node_modules/fs-native-extensions/prebuilds/$(node -p 'process.platform + "-" + process.arch')/fs-native-extensions.node" image/app/dist/

# Runtime stage: distroless Node.js 24, non-root, no shell. Pinned by digest;
# bump the digest (Renovate/Dependabot) to pick up base-image fixes.
FROM gcr.io/distroless/nodejs24-debian12:nonroot@sha256:14d42e2511532589a7c7e01a753667a74fcc96266e137e8125006b87b0c32d0a
# OCI labels; `npm run image` passes the version, the git commit and the build time.
ARG VERSION=0.0.0-dev
ARG REVISION=unknown
ARG CREATED=1970-01-01T00:00:00Z
LABEL org.opencontainers.image.title="raft-elector" \
      org.opencontainers.image.description="Leader-election sidecar for Kubernetes: the election half of etcd-raft over WebSockets, with a /leader API, a pod label and a fencing token." \
      org.opencontainers.image.source="https://github.com/raft-elector/raft-elector" \
      org.opencontainers.image.url="https://github.com/raft-elector/raft-elector" \
      org.opencontainers.image.documentation="https://github.com/raft-elector/raft-elector/blob/main/docs/install.md" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.base.name="gcr.io/distroless/nodejs24-debian12:nonroot"
WORKDIR /app
# package.json sits at ../package.json from the bundle: `--version` reads it.
COPY package.json ./
COPY --from=build /src/image/app/dist ./dist
COPY --from=build /src/image/app/THIRD_PARTY_LICENSES ./THIRD_PARTY_LICENSES
# The default --data-dir, writable by the runtime user when no volume is mounted.
COPY --from=build --chown=65532:65532 /src/image/var/lib/raft-elector /var/lib/raft-elector
ENV NODE_ENV=production
# 65532 is distroless's "nonroot"; numeric so runAsNonRoot can verify it.
USER 65532:65532
# 4040: HTTP API (/leader, /healthz, /readyz, /metrics); 4041: raft peers.
EXPOSE 4040 4041
ENTRYPOINT ["/nodejs/bin/node", "--max-semi-space-size=1", "/app/dist/raft-elector.mjs"]
