# vdi-broker production image: the compiled broker (dist/), production dependencies only,
# QEMU for the embedded hypervisor driver, running as uid 10001 with its state under /data.
# Build: docker build -t vdi-broker .   (README, "Production deployment": secrets, /data, KVM)

FROM node:22-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY server ./server
COPY config ./config
COPY client ./client
COPY scripts ./scripts
RUN npm run build

FROM node:22-bookworm-slim AS deps
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund

FROM node:22-bookworm-slim
# The embedded driver (the default provider "local") runs QEMU inside this container; pass
# /dev/kvm for speed, else it falls back to software emulation. Set QEMU=0 for brokers that
# only reach libvirt hosts and existing machines (manual pools).
ARG QEMU=1
RUN if [ "$QEMU" = 1 ]; then apt-get update -qq \
      && apt-get install -y -qq --no-install-recommends qemu-system-x86 qemu-utils >/dev/null \
      && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb; fi
ENV NODE_ENV=production \
    MALLOC_ARENA_MAX=2 \
    MALLOC_MMAP_THRESHOLD_=1048576
# A fixed uid so operators can chown mounted secrets and volumes to it (10001:10001).
RUN groupadd --system --gid 10001 vdi \
    && useradd --system --uid 10001 --gid vdi --home-dir /data --shell /usr/sbin/nologin vdi \
    && mkdir -p /data && chown vdi:vdi /data && chmod 0750 /data
WORKDIR /app
COPY --from=deps /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY package.json ./
# Every relative path of the configuration (data/qemu, data/images, data/shares, data/samba,
# data/recordings) lands on the volume; /app itself stays read-only for the broker's user.
RUN ln -s /data /app/data
VOLUME ["/data"]
USER vdi
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=10s --start-period=20s --retries=3 \
  CMD ["node", "dist/server/healthcheck.js"]
ENTRYPOINT ["node", "--no-allocation-site-pretenuring", "--max-semi-space-size=32", "dist/server/main.js"]
