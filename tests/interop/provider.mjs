// oidc-provider (an OpenID Certified authorization server) on loopback, for
// the interop tests in tests/interop.rs.
//
//   node tests/interop/provider.mjs --port 0 [--access-ttl 2] [--refresh-ttl 60]
//
// Prints one JSON object per line on stdout: first
// {"event":"ready","issuer":…,"version":…}, then one line per provider event
// the tests count (token grants, errors, revocations, introspections) —
// client ids, grant types and error codes only, never a token or a secret.
// A line `sync <id>` on stdin is answered with {"event":"sync","id":"<id>"}:
// every event printed before it has been read once the answer arrives.
// It exits when stdin closes, so no provider outlives the test that started it.

import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';

import Provider from 'oidc-provider';

const { values: args } = parseArgs({
  options: {
    port: { type: 'string', default: '0' },
    'access-ttl': { type: 'string', default: process.env.INTEROP_ACCESS_TTL ?? '2' },
    'refresh-ttl': { type: 'string', default: process.env.INTEROP_REFRESH_TTL ?? '60' },
  },
});

const seconds = (name) => {
  const value = Number(args[name]);
  if (!Number.isInteger(value) || value < 1) {
    process.stderr.write(`--${name} must be a whole number of seconds >= 1, got ${args[name]}\n`);
    process.exit(2);
  }
  return value;
};
const accessTtl = seconds('access-ttl');
const refreshTtl = seconds('refresh-ttl');

const version = JSON.parse(
  readFileSync(new URL('./node_modules/oidc-provider/package.json', import.meta.url)),
).version;

const emit = (event) => process.stdout.write(`${JSON.stringify(event)}\n`);

// Test-only credentials, on loopback only. The Rust side has the same list.
const clients = [
  {
    // A service using the client credentials grant.
    client_id: 'service',
    client_secret: 'service-secret-0123456789',
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    scope: 'api:read',
  },
  {
    // The protected API itself: it only introspects.
    client_id: 'api',
    client_secret: 'api-secret-0123456789',
    grant_types: [],
    response_types: [],
    redirect_uris: [],
  },
  {
    // A native app (CLI): authorization code + PKCE on any loopback port, then refresh.
    client_id: 'cli',
    application_type: 'native',
    token_endpoint_auth_method: 'none',
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    redirect_uris: ['http://127.0.0.1/callback'],
  },
  {
    // A web app driving the sign-in itself (examples/web_app.rs): a
    // confidential client, its callback on the test's loopback port.
    client_id: 'web',
    client_secret: 'web-secret-0123456789',
    application_type: 'native',
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    redirect_uris: ['http://127.0.0.1/callback'],
  },
  {
    // A device without a browser: device authorization, then refresh.
    client_id: 'tv',
    application_type: 'native',
    token_endpoint_auth_method: 'none',
    grant_types: ['urn:ietf:params:oauth:grant-type:device_code', 'refresh_token'],
    response_types: [],
    redirect_uris: [],
  },
  // --- client authentication by assertion (issue 15: private_key_jwt, client_secret_jwt) ---
  {
    // A service and a native app in one, authenticating with signed JWTs
    // (RFC 7523): the public halves of the ES256 and PS256 test keys in
    // crates/bearer-jose/tests/fixtures, whose private halves the tests use.
    client_id: 'pkjwt',
    application_type: 'native',
    token_endpoint_auth_method: 'private_key_jwt',
    jwks: {
      keys: [
        { kty: 'EC', crv: 'P-256', kid: 'pkjwt-es256', alg: 'ES256', use: 'sig', x: 'PJsuatQzVFBZL0dcS4BbB8HaD910mhHjdgGqKkbatLQ', y: 'mMuaQw_L_GdHo2UfWWwMgp8IWdjtupzvyka_KoDY8tE' },
        { kty: 'RSA', kid: 'pkjwt-ps256', alg: 'PS256', use: 'sig', e: 'AQAB', n: '6m94bFIhUIFN03VNu1Iy4Qtf3bneX-bH0PsbqvkiuLQ8rP2FTC3lRMaluOMh9H3pzc47ShLPe-OyngIFlAld-xN-4kqcC2zJibAfwJYky3YMBlKRDZD3QIDJYVAq-udwBWUTxgRL-qty0lXY5VZh6mUqYrDoQSlDqteu7PwMui33LVuwMHXYIoRrIoj2kTTM-mZ2faed7OBX1kF-geq5IuNW9F38jiKtLO1T9JLVEE5EF8005yPoT64_KULKRWzI9Z7pIIf812NeCORDqgn5CAjdXvq1vO8eIlTwO1LAXQiDgdVjfQf9gdy2PFgcn5cQVYe3xk71-_PQUioWPJzOOw' },
      ],
    },
    grant_types: ['client_credentials', 'authorization_code', 'refresh_token'],
    response_types: ['code'],
    redirect_uris: ['http://127.0.0.1/callback'],
    scope: 'openid api:read',
  },
  {
    // A service authenticating with an HS256 JWT keyed by its secret.
    client_id: 'secretjwt',
    client_secret: 'secretjwt-secret-0123456789-0123456789-0123456789',
    token_endpoint_auth_method: 'client_secret_jwt',
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    scope: 'api:read',
  },
  // --- end of client authentication by assertion ---
  // --- DPoP (issue 15): a service whose tokens must be DPoP-bound. ---
  {
    client_id: 'dpop-service',
    client_secret: 'dpop-service-secret-0123456789',
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    scope: 'api:read',
    dpop_bound_access_tokens: true,
  },
  // --- end DPoP ---
];

const configuration = {
  clients,
  scopes: ['openid', 'offline_access', 'api:read'],
  features: {
    clientCredentials: { enabled: true },
    // Only the API may introspect; a client may revoke only its own tokens.
    introspection: { enabled: true, allowedPolicy: async (_ctx, client) => client.clientId === 'api' },
    revocation: { enabled: true, allowedPolicy: async (_ctx, client, token) => token.clientId === client.clientId },
    deviceFlow: { enabled: true },
    // Login and consent pages that take plain form posts (any login, any password).
    devInteractions: { enabled: true },
    // --- DPoP (issue 15): proofs must carry a server nonce (a 32-byte
    // secret for this run only), so every client meets use_dpop_nonce once.
    dPoP: { enabled: true, nonceSecret: randomBytes(32), requireNonce: () => true, allowReplay: false },
    // --- end DPoP ---
  },
  // Access tokens stay opaque (no resource indicators), so they can be
  // introspected: oidc-provider refuses to introspect JWTs.
  ttl: {
    AccessToken: accessTtl,
    ClientCredentials: accessTtl,
    RefreshToken: refreshTtl,
    AuthorizationCode: 60,
    DeviceCode: 120,
    Grant: 600,
    Interaction: 600,
    Session: 600,
  },
  rotateRefreshToken: true,
  // First-party apps: a refresh token whenever the client may use one,
  // without the offline_access + prompt=consent ceremony.
  issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
  pkce: { required: () => true },
  // Session cookies keyed for this run only.
  cookies: { keys: [`interop-${process.pid}-${Date.now()}`] },
  findAccount: async (_ctx, sub) => ({ accountId: sub, claims: async () => ({ sub }) }),
};

const handler = { callback: null };
const server = createServer((req, res) => handler.callback(req, res));
server.listen(Number(args.port), '127.0.0.1', () => {
  const issuer = `http://127.0.0.1:${server.address().port}`;
  const provider = new Provider(issuer, configuration);
  watch(provider);
  handler.callback = provider.callback();
  emit({ event: 'ready', issuer, version, access_ttl: accessTtl, refresh_ttl: refreshTtl });
});

function watch(provider) {
  const client = (ctx) => ctx?.oidc?.client?.clientId;
  provider.on('grant.success', (ctx) => emit({
    event: 'grant.success', client_id: client(ctx), grant_type: ctx.oidc.params.grant_type,
  }));
  provider.on('grant.error', (ctx, err) => emit({
    event: 'grant.error', client_id: client(ctx), grant_type: ctx.oidc?.params?.grant_type, error: err.error,
  }));
  provider.on('grant.revoked', (_ctx, grantId) => emit({ event: 'grant.revoked', grant: !!grantId }));
  for (const kind of ['access_token', 'client_credentials', 'refresh_token']) {
    provider.on(`${kind}.destroyed`, (token) => emit({ event: `${kind}.destroyed`, client_id: token.clientId }));
  }
  provider.on('refresh_token.consumed', (token) => emit({ event: 'refresh_token.consumed', client_id: token.clientId }));
  provider.on('revocation.error', (ctx, err) => emit({
    event: 'revocation.error', client_id: client(ctx), error: err.error,
  }));
  provider.on('introspection.error', (ctx, err) => emit({
    event: 'introspection.error', client_id: client(ctx), error: err.error,
  }));
  provider.on('device_authorization.success', (ctx) => emit({
    event: 'device_authorization.success', client_id: client(ctx),
  }));
  provider.on('authorization.success', (ctx) => emit({
    event: 'authorization.success', client_id: client(ctx),
  }));
  provider.on('server_error', (_ctx, err) => emit({ event: 'server_error', message: String(err?.message) }));
}

// The parent's end of stdin closes when it drops us or dies.
const input = createInterface({ input: process.stdin });
input.on('line', (line) => {
  const [command, id] = line.trim().split(/\s+/);
  if (command === 'sync') emit({ event: 'sync', id });
});
input.on('close', () => process.exit(0));
