import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import { CompactSign, decodeJwt, exportJWK, generateKeyPair, SignJWT } from 'jose';
import { COLLECTIVITIES } from '../../../prisma/seed/territory.js';
import {
  actsIn,
  COLLECTIVITY_IDS,
  createAuthenticator,
  PUBLIC_VIEWER,
  requireRoleIn,
  signDevelopmentToken,
  tokenRefusedAfter,
  type Viewer,
} from '../src/auth.js';
import { loadConfig } from '../src/config.js';

const config = loadConfig({ NODE_ENV: 'test' });
const secret = new TextEncoder().encode(config.JWT_SECRET);
const authenticate = createAuthenticator(config);
const sign = (claims: Record<string, unknown>, key: Uint8Array = secret, exp: number | null = Math.floor(Date.now() / 1000) + 600) => {
  const jwt = new SignJWT(claims).setProtectedHeader({ alg: 'HS256' });
  if (exp !== null) jwt.setExpirationTime(exp);
  return jwt.sign(key);
};

async function rejection(authorization: string, by = authenticate): Promise<string> {
  try {
    await by(authorization);
  } catch (error) {
    const e = error as { message: string; extensions: { code: string } };
    assert.equal(e.extensions.code, 'UNAUTHENTICATED');
    return e.message;
  }
  assert.fail('accepted');
}

describe('authenticator', () => {
  it('treats no header as the public viewer', async () => {
    assert.equal(await authenticate(undefined), PUBLIC_VIEWER);
    assert.equal(await authenticate(null), PUBLIC_VIEWER);
    assert.equal(await authenticate(''), PUBLIC_VIEWER);
  });

  it('accepts a valid HS256 token and returns its claims', async () => {
    const token = await signDevelopmentToken({ sub: 'alice', roles: ['operator', 'admin'], collectivities: ['chalons'] }, config);
    const viewer = await authenticate(`Bearer ${token}`);
    const expiresAt = decodeJwt(token).exp! * 1000;
    assert.deepEqual(viewer, { sub: 'alice', roles: ['operator', 'admin'], collectivities: ['chalons'], token, expiresAt });
    assert.equal(tokenRefusedAfter(viewer), expiresAt + 5000, 'refused once exp and the 5 s of tolerated skew have passed');
    assert.equal(tokenRefusedAfter(PUBLIC_VIEWER), null);
    assert.deepEqual(await authenticate(`bearer ${token}`), viewer, 'the scheme is case-insensitive');
  });

  it('says why a token is refused', async () => {
    assert.match(await rejection('Basic abc'), /Bearer <token>/);
    assert.match(await rejection('Bearer abc.def'), /malformed token/);
    assert.match(await rejection(`Bearer ${await signDevelopmentToken({ sub: 'a', roles: ['agent'], collectivities: [], expiresIn: -60 }, config)}`), /^token expired$/);
    assert.match(await rejection(`Bearer ${await sign({ sub: 'a', roles: [], collectivities: [] }, new TextEncoder().encode('x'.repeat(40)))}`), /signature is invalid/);
    assert.match(await rejection(`Bearer ${await sign({ sub: 'a', roles: [], collectivities: [] }, secret, null)}`), /claim 'exp' is missing/);
    assert.match(await rejection(`Bearer ${await sign({ sub: 'a', roles: ['operator', 'x'], collectivities: [] })}`), /roles: unknown role 'x'/);
    assert.match(await rejection(`Bearer ${await sign({ sub: 'a', roles: 'admin', collectivities: [] })}`), /roles: must be an array/);
    assert.match(await rejection(`Bearer ${await sign({ sub: 'a', roles: [], collectivities: [3] })}`), /collectivities: must be an array/);
    assert.match(await rejection(`Bearer ${await sign({ roles: [], collectivities: [] })}`), /sub: must be a non-empty string/);
    const unsigned = `${Buffer.from('{"alg":"none"}').toString('base64url')}.${Buffer.from(JSON.stringify({ sub: 'a', roles: ['admin'], collectivities: ['chalons'], exp: 9999999999 })).toString('base64url')}.`;
    assert.match(await rejection(`Bearer ${unsigned}`), /token/);
  });

  it('verifies RS256/ES256 tokens against JWT_JWKS_URL, and then refuses HS256 ones', async () => {
    const rsa = await generateKeyPair('RS256');
    const ec = await generateKeyPair('ES256');
    const keys = [
      { ...(await exportJWK(rsa.publicKey)), kid: 'rsa', alg: 'RS256' },
      { ...(await exportJWK(ec.publicKey)), kid: 'ec', alg: 'ES256' },
    ];
    const server = http.createServer((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys })));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const port = (server.address() as { port: number }).port;
      const remote = createAuthenticator(loadConfig({ NODE_ENV: 'test', JWT_JWKS_URL: `http://127.0.0.1:${port}/jwks.json` }));
      const claims = { sub: 'bus-operator', roles: ['partner'], collectivities: ['chalons-agglo'] };
      const exp = Math.floor(Date.now() / 1000) + 600;
      const rs = await new SignJWT(claims).setProtectedHeader({ alg: 'RS256', kid: 'rsa' }).setExpirationTime(exp).sign(rsa.privateKey);
      const es = await new SignJWT(claims).setProtectedHeader({ alg: 'ES256', kid: 'ec' }).setExpirationTime(exp).sign(ec.privateKey);
      assert.deepEqual((await remote(`Bearer ${rs}`)).roles, ['partner']);
      assert.equal((await remote(`Bearer ${es}`)).sub, 'bus-operator');
      const hs = await signDevelopmentToken({ sub: 'a', roles: ['admin'], collectivities: ['chalons'] }, config);
      await assert.rejects(remote(`Bearer ${hs}`), (error: Error & { extensions: { code: string } }) => {
        assert.equal(error.extensions.code, 'UNAUTHENTICATED');
        assert.match(error.message, /algorithm is not accepted/);
        return true;
      });
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});

describe('token claims', () => {
  const now = () => Math.floor(Date.now() / 1000);
  const valid = { sub: 'a', roles: ['operator'], collectivities: ['chalons'] };
  /** A token whose payload is these exact bytes (JSON can say 1e309, which SignJWT cannot). */
  const rawToken = (payload: string) =>
    new CompactSign(new TextEncoder().encode(payload)).setProtectedHeader({ alg: 'HS256' }).sign(secret);

  it('knows exactly the collectivities the seed creates', () => {
    assert.deepEqual([...COLLECTIVITY_IDS], COLLECTIVITIES.map((c) => c.id));
  });

  it('refuses collectivities that do not exist, naming the claim and the id', async () => {
    for (const id of ['paris', '*', 'Chalons', 'chalons\u0000', ' chalons', 'chalons-agglo,paris']) {
      const message = await rejection(`Bearer ${await sign({ ...valid, collectivities: ['chalons', id] })}`);
      assert.match(message, /^token claim collectivities: unknown collectivity '/, id);
      assert.ok(message.includes(`'${id}'`), message);
      assert.match(message, /known: chalons, fagnieres, saint-martin-sur-le-pre, chalons-agglo/);
    }
    await assert.rejects(signDevelopmentToken({ ...valid, roles: ['operator'], collectivities: ['paris'] }, config), /unknown collectivity 'paris'/);
  });

  it('caps the lifetime: exp − iat, or exp − now without iat (JWT_MAX_LIFETIME_SECONDS)', async () => {
    const capped = createAuthenticator(loadConfig({ NODE_ENV: 'test', JWT_MAX_LIFETIME_SECONDS: '3600' }));
    const t = now();
    await capped(`Bearer ${await sign({ ...valid, iat: t }, secret, t + 3600)}`);
    await capped(`Bearer ${await sign({ ...valid, iat: t - 3000 }, secret, t + 600)}`);
    await capped(`Bearer ${await sign(valid, secret, t + 3590)}`);
    assert.match(await rejection(`Bearer ${await sign({ ...valid, iat: t }, secret, t + 3601)}`, capped), /^token claim exp: lifetime of 3601 s from iat exceeds the maximum of 3600 s$/);
    assert.match(await rejection(`Bearer ${await sign(valid, secret, t + 3700)}`, capped), /^token claim exp: lifetime of \d+ s from now exceeds the maximum of 3600 s$/);
    // The default cap is one day: a token of 2100 is refused.
    assert.match(await rejection(`Bearer ${await sign({ ...valid, iat: t }, secret, Date.UTC(2100, 0, 1) / 1000)}`), /^token claim exp: lifetime of \d+ s from iat exceeds the maximum of 86400 s$/);
    // An iat in the future would make a far exp look short.
    assert.match(await rejection(`Bearer ${await sign({ ...valid, iat: t + 86_000 }, secret, t + 86_400)}`), /^token claim iat: is in the future$/);
    await authenticate(`Bearer ${await sign({ ...valid, iat: t + 3 }, secret, t + 600)}`); // within the tolerated skew
    // Numbers JSON allows and JavaScript reads as Infinity, or absurd ones.
    const claims = `"sub":"a","roles":["operator"],"collectivities":["chalons"]`;
    assert.match(await rejection(`Bearer ${await rawToken(`{${claims},"exp":1e309}`)}`), /^token claim exp: lifetime of Infinity s/);
    assert.match(await rejection(`Bearer ${await rawToken(`{${claims},"exp":${t + 60},"iat":-1e309}`)}`), /^token claim exp: lifetime of Infinity s/);
    assert.match(await rejection(`Bearer ${await rawToken(`{${claims},"exp":${t + 60},"iat":"yesterday"}`)}`), /claim 'iat' is invalid/);
    assert.match(await rejection(`Bearer ${await rawToken(`{${claims},"exp":"${t + 60}"}`)}`), /claim 'exp' is invalid/);
  });

  it('mints development tokens within the cap only', async () => {
    const short = loadConfig({ NODE_ENV: 'test', JWT_MAX_LIFETIME_SECONDS: '3600' });
    await signDevelopmentToken({ ...valid, roles: ['operator'], expiresIn: '1h' }, short);
    await assert.rejects(
      signDevelopmentToken({ ...valid, roles: ['operator'], expiresIn: '61m' }, short),
      /lifetime of 3660 s exceeds the maximum of 3600 s \(JWT_MAX_LIFETIME_SECONDS\)/,
    );
    await assert.rejects(signDevelopmentToken({ ...valid, roles: ['operator'], expiresIn: '36500d' }, config), /JWT_MAX_LIFETIME_SECONDS/);
  });

  it('checks iss and aud when JWT_ISSUER and JWT_AUDIENCE are set, and development tokens carry them', async () => {
    const strictConfig = loadConfig({ NODE_ENV: 'test', JWT_ISSUER: 'https://auth.connecte.example', JWT_AUDIENCE: 'connecte-hub' });
    const strict = createAuthenticator(strictConfig);
    const development = await signDevelopmentToken({ ...valid, roles: ['operator'] }, strictConfig);
    assert.deepEqual(decodeJwt(development).iss, 'https://auth.connecte.example');
    assert.equal((await strict(`Bearer ${development}`)).sub, 'a');
    const iss = 'https://auth.connecte.example';
    assert.match(await rejection(`Bearer ${await sign({ ...valid, aud: 'connecte-hub' })}`, strict), /^token claim 'iss' is missing$/);
    assert.match(await rejection(`Bearer ${await sign({ ...valid, iss })}`, strict), /^token claim 'aud' is missing$/);
    assert.match(await rejection(`Bearer ${await sign({ ...valid, iss: 'https://evil.example', aud: 'connecte-hub' })}`, strict), /^token claim 'iss' is invalid/);
    assert.match(await rejection(`Bearer ${await sign({ ...valid, iss, aud: 'another-app' })}`, strict), /^token claim 'aud' is invalid/);
    assert.match(await rejection(`Bearer ${await sign({ ...valid, iss, aud: ['another-app'] })}`, strict), /^token claim 'aud' is invalid/);
    assert.equal((await strict(`Bearer ${await sign({ ...valid, iss, aud: ['another-app', 'connecte-hub'] })}`)).sub, 'a');
    // Without them configured, a token's own iss and aud are not held against it.
    assert.equal((await authenticate(`Bearer ${await sign({ ...valid, iss: 'anyone', aud: 'anything' })}`)).sub, 'a');
    // A token minted without them does not open a hub that requires them.
    assert.match(await rejection(`Bearer ${await signDevelopmentToken({ ...valid, roles: ['operator'] }, config)}`, strict), /'iss' is missing/);
  });
});

describe('role helpers', () => {
  const operator: Viewer = { sub: 'o', roles: ['operator'], collectivities: ['chalons'], token: 't', expiresAt: null };

  it('scope operators and admins to their collectivities', () => {
    assert.ok(actsIn(operator, 'chalons', ['operator', 'admin']));
    assert.ok(!actsIn(operator, 'fagnieres', ['operator', 'admin']));
    assert.ok(!actsIn(operator, 'chalons', ['admin']));
    assert.ok(!actsIn(PUBLIC_VIEWER, 'chalons', ['operator', 'admin']));
  });

  it('requireRoleIn: UNAUTHENTICATED for the public, FORBIDDEN naming the collectivity and roles otherwise', () => {
    requireRoleIn(operator, 'chalons', ['operator']);
    assert.throws(() => requireRoleIn(PUBLIC_VIEWER, 'chalons', ['operator']), (e: Error & { extensions: { code: string } }) => e.extensions.code === 'UNAUTHENTICATED');
    assert.throws(
      () => requireRoleIn(operator, 'fagnieres', ['operator', 'admin'], 'setDimLevel'),
      (e: Error & { extensions: { code: string; field: string } }) =>
        e.extensions.code === 'FORBIDDEN' && e.extensions.field === 'setDimLevel' && /operator or admin in collectivity 'fagnieres'/.test(e.message),
    );
  });

  it('never mints development tokens in production', async () => {
    await assert.rejects(
      signDevelopmentToken({ sub: 'a', roles: ['admin'], collectivities: [] }, { ...config, NODE_ENV: 'production' }),
      /NODE_ENV=production/,
    );
  });
});

describe('npm run token', () => {
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
  const run = (args: string[], env: Record<string, string> = {}) =>
    promisify(execFile)(process.execPath, ['--import', 'tsx', 'scripts/token.ts', ...args], {
      cwd: root,
      env: { ...process.env, NODE_ENV: 'development', JWT_SECRET: '', ...env },
    }).then(
      ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
      (error: { code: number; stdout: string; stderr: string }) => ({ code: error.code, stdout: error.stdout, stderr: error.stderr }),
    );

  it('prints a token the authenticator accepts', async () => {
    const { code, stdout } = await run(['--role', 'operator', '--collectivity', 'chalons', '--role', 'admin', '--sub', 'alice']);
    assert.equal(code, 0);
    const viewer = await authenticate(`Bearer ${stdout.trim()}`);
    assert.deepEqual([viewer.sub, viewer.roles, viewer.collectivities], ['alice', ['operator', 'admin'], ['chalons']]);
  });

  it('rejects unknown roles and collectivities, and refuses to run in production', async () => {
    const role = await run(['--role', 'mayor']);
    assert.equal(role.code, 1);
    assert.match(role.stderr, /unknown role 'mayor'/);
    const place = await run(['--role', 'agent', '--collectivity', 'reims']);
    assert.equal(place.code, 1);
    assert.match(place.stderr, /unknown collectivity 'reims'/);
    const century = await run(['--role', 'operator', '--expires', '36500d']);
    assert.equal(century.code, 1);
    assert.match(century.stderr, /--expires 36500d: a lifetime of 3153600000 s exceeds the maximum of 86400 s \(JWT_MAX_LIFETIME_SECONDS\)/);
    assert.equal(century.stdout, '');
    const longer = await run(['--role', 'operator', '--expires', '2d'], { JWT_MAX_LIFETIME_SECONDS: '172800' });
    assert.equal(longer.code, 0, longer.stderr);
    const zero = await run(['--role', 'operator', '--expires', '0s']);
    assert.equal(zero.code, 1);
    assert.match(zero.stderr, /--expires '0s' is not a time span/);
    const production = await run(['--role', 'admin'], { NODE_ENV: 'production', JWT_SECRET: 'y'.repeat(40) });
    assert.equal(production.code, 1);
    assert.match(production.stderr, /refusing .* NODE_ENV=production/);
    assert.equal(production.stdout, '');
  });
});
