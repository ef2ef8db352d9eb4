// Checks a digest email's HTML and CSS against caniemail's data (through doiuse-email) for
// Gmail, Outlook (Windows, Windows Mail and Outlook.com) and Apple Mail, and compares the
// errors with the allow-list beside this file.
//
//   node email_css.mjs EMAIL.html
//
// Prints one line per remaining error (feature, client, occurrences), the warning count,
// and exits 1 when an error is not on the allow-list or an allow-list entry no longer
// occurs (so the list stays true).
import { DoIUseEmail } from '@jsx-email/doiuse-email';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const CLIENTS = ['gmail.*', 'outlook.windows', 'outlook.windows-mail', 'apple-mail.*'];
// doiuse-email's client list leaves out Outlook.com although its caniemail data covers
// it, so it is added to the checker's list by hand.
const EXTRA_CLIENTS = ['outlook.outlook-com'];

const file = process.argv[2];
if (!file) {
  console.error('usage: node email_css.mjs EMAIL.html');
  process.exit(2);
}
const html = readFileSync(file, 'utf8');
const checker = new DoIUseEmail({ emailClients: CLIENTS });
checker.emailClients.push(...EXTRA_CLIENTS);
const result = checker.check(html);

// "`Feature` is not supported by `client`" → feature, client.
const parse = (message) => {
  const parts = message.split('`');
  return { feature: parts[1], client: parts[3] };
};
const errors = new Map();
for (const message of result.errors ?? []) {
  const { feature, client } = parse(message);
  const key = `${feature} | ${client}`;
  errors.set(key, (errors.get(key) ?? 0) + 1);
}

const here = dirname(fileURLToPath(import.meta.url));
const allowed = new Map();
for (const line of readFileSync(join(here, 'email-css-allowed.txt'), 'utf8').split('\n')) {
  const text = line.trim();
  if (text === '' || text.startsWith('#')) continue;
  const [feature, clients, why] = text.split('|').map((s) => s.trim());
  if (!feature || !clients || !why) {
    console.error(`allow-list line without feature | clients | why: ${text}`);
    process.exit(2);
  }
  for (const client of clients.split(/\s+/)) allowed.set(`${feature} | ${client}`, why);
}

let failures = 0;
console.log(`clients: ${checker.emailClients.join(' ')}`);
for (const [key, count] of [...errors].sort()) {
  const mark = allowed.has(key) ? 'allowed' : 'NOT ALLOWED';
  if (!allowed.has(key)) failures++;
  console.log(`error ${key} ×${count}: ${mark}`);
}
for (const key of allowed.keys()) {
  if (!errors.has(key)) {
    failures++;
    console.log(`allow-list entry no longer needed: ${key}`);
  }
}
const features = new Set([...errors.keys()].map((k) => k.split(' | ')[0]));
console.log(
  `EMAIL-CSS errors=${[...errors.values()].reduce((a, b) => a + b, 0)} ` +
    `distinct=${errors.size} features=${features.size} ` +
    `unlisted=${failures} warnings=${(result.warnings ?? []).length}`,
);
process.exit(failures === 0 ? 0 : 1);
