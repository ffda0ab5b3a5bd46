import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import {
  actsIn,
  canSeeCameraPositions,
  createAuthenticator,
  hasRole,
  PUBLIC_VIEWER,
  requireRoleIn,
  signDevelopmentToken,
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

async function rejection(authorization: string): Promise<string> {
  try {
    await authenticate(authorization);
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
    assert.deepEqual(viewer, { sub: 'alice', roles: ['operator', 'admin'], collectivities: ['chalons'], token });
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

describe('role helpers', () => {
  const operator: Viewer = { sub: 'o', roles: ['operator'], collectivities: ['chalons'], token: 't' };
  const citizen: Viewer = { sub: 'c', roles: ['citizen'], collectivities: [], token: 't' };

  it('scope operators and admins to their collectivities', () => {
    assert.ok(hasRole(operator, 'admin', 'operator'));
    assert.ok(!hasRole(citizen, 'admin', 'operator'));
    assert.ok(actsIn(operator, 'chalons', ['operator', 'admin']));
    assert.ok(!actsIn(operator, 'fagnieres', ['operator', 'admin']));
    assert.ok(!actsIn(operator, 'chalons', ['admin']));
    assert.ok(canSeeCameraPositions(operator));
    assert.ok(!canSeeCameraPositions(citizen));
    assert.ok(!canSeeCameraPositions({ ...operator, collectivities: [] }));
    assert.ok(!canSeeCameraPositions(PUBLIC_VIEWER));
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
    const production = await run(['--role', 'admin'], { NODE_ENV: 'production', JWT_SECRET: 'y'.repeat(40) });
    assert.equal(production.code, 1);
    assert.match(production.stderr, /refusing .* NODE_ENV=production/);
    assert.equal(production.stdout, '');
  });
});
