#!/bin/sh
# Prisma's native schema engine cannot be downloaded on these machines. `prisma generate`
# only needs this path to exist; anything that really needs the engine (migrate, db push)
# must fail loudly rather than "succeed" doing nothing. Migrations run through
# scripts/migrate.ts, which records them in _prisma_migrations exactly as Prisma does.
echo "connecte-hub: the Prisma schema engine is not available here; apply migrations with 'npm run setup' (scripts/migrate.ts)" >&2
exit 1
