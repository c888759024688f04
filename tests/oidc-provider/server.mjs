// A real OpenID Connect provider for k8soidc's tests: panva/oidc-provider (OpenID Certified)
// on 127.0.0.1 over HTTPS. Configured by environment variables:
//   PORT (required; 0 = a free port chosen by the kernel, race-free, reported in the ready
//   line), TLS_CERT and TLS_KEY (PEM files, required), ISSUER (default
//   https://127.0.0.1:<listening port>), CLIENT_ID (default kubernetes), CLIENT_SECRET (default secret),
//   REDIRECT_URI (default http://127.0.0.1/callback: never served, the test reads `code` from
//   the Location header).
// Accounts: the login_hint is the account id; known ones are in ACCOUNTS below.
// Logins are non-interactive: this script answers its own /interaction/:uid (login from
// login_hint, consent by creating a Grant) with the provider's interactionDetails /
// interactionFinished helpers, so curl with a cookie jar runs the real authorization-code flow.
// Prints "ready <issuer>" on stdout when listening. Listens on 127.0.0.1 only.
import { readFileSync } from 'node:fs';
import https from 'node:https';
import { generateKeyPairSync } from 'node:crypto';
import Provider from 'oidc-provider';

const port = Number(process.env.PORT);
if (process.env.PORT === undefined || !Number.isInteger(port)) throw new Error('PORT is required');
const clientId = process.env.CLIENT_ID || 'kubernetes';
const redirectUri = process.env.REDIRECT_URI || 'http://127.0.0.1/callback';

const ACCOUNTS = {
  // `sub` is the account id (oidc-provider sets it).
  jane: { email: 'jane@example.com', email_verified: true, groups: ['k8s-admins', 'devs'] },
  bob: { email: 'bob@example.com', email_verified: false, groups: 'devs' },
};

const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const jwk = { ...privateKey.export({ format: 'jwk' }), kid: 'test-rs256', alg: 'RS256', use: 'sig' };

const config = {
  clients: [{
    client_id: clientId,
    client_secret: process.env.CLIENT_SECRET || 'secret',
    redirect_uris: [redirectUri],
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
  }],
  jwks: { keys: [jwk] },
  cookies: { keys: ['k8soidc-test-cookie-key'] },
  scopes: ['openid', 'email', 'groups', 'offline_access'],
  claims: { openid: ['sub'], email: ['email', 'email_verified'], groups: ['groups'] },
  conformIdTokenClaims: false,
  features: { devInteractions: { enabled: false } },
  pkce: { required: () => false },
  async findAccount(ctx, id) {
    const a = ACCOUNTS[id];
    if (!a) return undefined;
    return { accountId: id, async claims() { return { ...a }; } };
  },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
};
// Made once the server listens, when the issuer's port is known.
let provider;
let callback;

async function interaction(req, res) {
  const details = await provider.interactionDetails(req, res);
  const { prompt, params, session, uid } = details;
  if (prompt.name === 'login') {
    const accountId = params.login_hint;
    if (!ACCOUNTS[accountId]) {
      res.statusCode = 400;
      res.end(`unknown login_hint ${accountId}`);
      return;
    }
    await provider.interactionFinished(req, res, { login: { accountId } }, { mergeWithLastSubmission: false });
    return;
  }
  if (prompt.name === 'consent') {
    const grant = new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
    grant.addOIDCScope(String(params.scope));
    const grantId = await grant.save();
    await provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
    return;
  }
  res.statusCode = 400;
  res.end(`unexpected prompt ${prompt.name} (${uid})`);
}

const server = https.createServer(
  { cert: readFileSync(process.env.TLS_CERT), key: readFileSync(process.env.TLS_KEY) },
  (req, res) => {
    if (req.url.startsWith('/interaction/')) {
      interaction(req, res).catch((err) => {
        res.statusCode = 500;
        res.end(String(err));
      });
      return;
    }
    callback(req, res);
  },
);
server.listen(port, '127.0.0.1', () => {
  const issuer = process.env.ISSUER || `https://127.0.0.1:${server.address().port}`;
  provider = new Provider(issuer, config);
  callback = provider.callback();
  process.stdout.write(`ready ${issuer}\n`);
});
