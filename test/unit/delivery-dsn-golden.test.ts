/**
 * Golden DSNs: one failure (RET=FULL, with ENVID and ORCPT) and one delay, with a fixed clock and
 * id, compared byte for byte with test/fixtures/dsn/*.eml. A change in what senders receive
 * shows up here as a diff. To accept an intended change: HALYARD_UPDATE_GOLDEN=1, run, review.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { buildDsn, formatDiagnostic, parseStatus, type DsnInput } from '../../src/delivery/dsn';
import { delayedRecipient, input } from './delivery-dsn-mime';

// dist/test/unit → the source tree's test/fixtures/dsn
const FIXTURES = path.resolve(__dirname, '../../../test/fixtures/dsn');

function golden(name: string, dsnInput: DsnInput): void {
  const r = buildDsn(dsnInput);
  assert.ok(r);
  const file = path.join(FIXTURES, name);
  if (process.env.HALYARD_UPDATE_GOLDEN === '1') {
    fs.mkdirSync(FIXTURES, { recursive: true });
    fs.writeFileSync(file, r.message);
  }
  assert.equal(r.message.toString('latin1'), fs.readFileSync(file).toString('latin1'));
}

test('a failure report matches the golden file', () => {
  const lines = [
    "The email account that you tried to reach does not exist. Please try double-checking the recipient's email address for typos or unnecessary spaces.",
    'For more information, go to https://support.example.org/mail/answer/nosuchuser',
  ];
  golden(
    'failed.eml',
    input(
      {
        recipients: [
          {
            recipient: 'bob@example.org',
            orcpt: 'rfc822;Bob@example.org',
            action: 'failed',
            status: parseStatus([5, 1, 1], 550),
            remoteMta: 'mx.example.org',
            diagnostic: { type: 'smtp', text: formatDiagnostic(550, [5, 1, 1], lines) },
            lastAttempt: new Date(Date.UTC(2025, 5, 2, 9, 59, 30)),
          },
        ],
      },
      { envid: 'QQ314159', ret: 'FULL', receivedFromMta: 'client.example.net' },
    ),
  );
});

test('a delay report matches the golden file', () => {
  golden('delayed.eml', input({ recipients: [delayedRecipient({ notify: ['FAILURE', 'DELAY'] })] }, { ret: 'HDRS' }));
});
