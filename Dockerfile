# syntax=docker/dockerfile:1
# vdi-broker production image: compiled broker, production dependencies, non-root.
# The embedded QEMU driver needs qemu-system-x86/qemu-utils and /dev/kvm in the container;
# brokers that only talk to remote hypervisors do not.

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
ENV NODE_ENV=production \
    MALLOC_ARENA_MAX=2 \
    MALLOC_MMAP_THRESHOLD_=1048576
RUN groupadd --system vdi && useradd --system --gid vdi --home-dir /app --shell /usr/sbin/nologin vdi
WORKDIR /app
COPY --from=deps /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY package.json ./
USER vdi
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.VDI_SERVER_PORT||8080)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
ENTRYPOINT ["node", "dist/server/main.js"]
