# One image for every Node service of the hub; docker-compose picks the entry point.
# Node.js 24 LTS; services run the compiled build (`npm run build`), never tsx: under
# --conditions=connecte-compiled every workspace package resolves to its dist/.
FROM node:24-bookworm-slim
WORKDIR /app
ENV CHECKPOINT_DISABLE=1 NODE_ENV=production NODE_OPTIONS=--conditions=connecte-compiled
COPY package.json package-lock.json .npmrc ./
COPY packages/shared/package.json packages/shared/
COPY packages/testkit/package.json packages/testkit/
COPY subgraphs/territory/package.json subgraphs/territory/
COPY subgraphs/equipment/package.json subgraphs/equipment/
COPY subgraphs/telemetry/package.json subgraphs/telemetry/
COPY subgraphs/tickets/package.json subgraphs/tickets/
COPY subgraphs/mobility/package.json subgraphs/mobility/
COPY gateway/package.json gateway/
COPY opendata/package.json opendata/
RUN npm ci --include=dev --no-audit --no-fund
COPY . .
RUN npm run build
