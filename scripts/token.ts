/**
 * `npm run token -- --role operator --collectivity chalons [--role admin] [--collectivity x]
 *  [--sub alice] [--expires 12h]`: prints a development HS256 token signed with the
 * configured JWT_SECRET (only the token on stdout, so `TOKEN=$(npm run -s token -- ...)` works).
 */
import { parseArgs } from 'node:util';
import { COLLECTIVITY_IDS, ROLES, signDevelopmentToken, type Role } from '@connecte/shared/auth';
import { loadConfigOrExit } from '@connecte/shared/config';

const USAGE = `usage: npm run token -- --role <role> [--role <role>...] [--collectivity <id>...] [--sub <subject>] [--expires <span>]
  roles:          ${ROLES.join(', ')}
  collectivities: ${COLLECTIVITY_IDS.join(', ')}
  expires:        a time span such as 30m, 12h, 7d (default 12h), at most JWT_MAX_LIFETIME_SECONDS`;

function fail(message: string): never {
  console.error(`token: ${message}\n${USAGE}`);
  process.exit(1);
}

// Checked before anything else: no development token may ever exist in production.
if (process.env.NODE_ENV === 'production') {
  console.error('token: refusing to mint a development token when NODE_ENV=production');
  process.exit(1);
}

let values;
try {
  ({ values } = parseArgs({
    options: {
      role: { type: 'string', short: 'r', multiple: true },
      collectivity: { type: 'string', short: 'c', multiple: true },
      sub: { type: 'string', short: 's', default: 'developer' },
      expires: { type: 'string', short: 'e', default: '12h' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
    allowPositionals: false,
  }));
} catch (error) {
  fail((error as Error).message);
}
if (values.help) {
  console.log(USAGE);
  process.exit(0);
}

const roles = values.role ?? [];
if (roles.length === 0) fail('at least one --role is required');
for (const role of roles) {
  if (!(ROLES as readonly string[]).includes(role)) fail(`unknown role '${role}'`);
}
const collectivities = values.collectivity ?? [];
for (const id of collectivities) {
  if (!(COLLECTIVITY_IDS as readonly string[]).includes(id)) fail(`unknown collectivity '${id}'`);
}
if (!/^0*[1-9]\d*\s?(s|m|h|d|w)$/.test(values.expires)) fail(`--expires '${values.expires}' is not a time span like 30m, 12h or 7d`);
if (values.sub.trim() === '') fail('--sub must not be empty');

const config = loadConfigOrExit();
let token: string;
try {
  token = await signDevelopmentToken(
    { sub: values.sub, roles: [...new Set(roles)] as Role[], collectivities: [...new Set(collectivities)], expiresIn: values.expires },
    config,
  );
} catch (error) {
  fail(`--expires ${values.expires}: ${(error as Error).message}`);
}
console.error(`token for sub=${values.sub} roles=${roles.join(',')} collectivities=${collectivities.join(',') || '-'} expires in ${values.expires}`);
console.log(token);
