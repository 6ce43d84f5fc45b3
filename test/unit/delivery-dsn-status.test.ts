/**
 * The Status and Diagnostic-Code values a bounce processor reads, derived from SMTP replies.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatDiagnostic, parseStatus, rfc5322Date } from '../../src/delivery/dsn';

test('parseStatus keeps the remote enhanced code', () => {
  assert.equal(parseStatus([5, 1, 1], 550), '5.1.1');
  assert.equal(parseStatus([4, 7, 24], 451), '4.7.24');
  assert.equal(parseStatus([2, 0, 0], 250), '2.0.0');
});

test('parseStatus derives X.0.0 from the reply code when the remote gave no enhanced code', () => {
  assert.equal(parseStatus(null, 550), '5.0.0');
  assert.equal(parseStatus(null, 554), '5.0.0');
  assert.equal(parseStatus(null, 421), '4.0.0');
  assert.equal(parseStatus(null, 250), '2.0.0');
  assert.equal(parseStatus(null, 0), '5.0.0', 'no reply code at all is not a success or a deferral');
});

test('parseStatus makes the class agree with the reply code and rejects out-of-range numbers', () => {
  assert.equal(parseStatus([4, 1, 1], 550), '5.1.1');
  assert.equal(parseStatus([5, 2, 2], 452), '4.2.2');
  assert.equal(parseStatus([5, 1000, 1], 550), '5.0.0');
  assert.equal(parseStatus([5, 1.5, 1], 550), '5.0.0');
});

test('formatDiagnostic writes the reply as received, multi-line replies joined on one logical line', () => {
  assert.equal(formatDiagnostic(550, [5, 1, 1], ['User unknown']), '550 5.1.1 User unknown');
  assert.equal(formatDiagnostic(550, null, ['User unknown']), '550 User unknown');
  assert.equal(
    formatDiagnostic(550, [5, 1, 1], ['The account does not exist.', 'See https://help.example/nosuchuser']),
    '550-5.1.1 The account does not exist. 550 5.1.1 See https://help.example/nosuchuser',
  );
  assert.equal(formatDiagnostic(554, null, []), '554');
  assert.equal(formatDiagnostic(554, [5, 7, 1], []), '554 5.7.1');
});

test('formatDiagnostic does not double an enhanced code the line already carries, nor keep line breaks', () => {
  assert.equal(formatDiagnostic(550, [5, 1, 1], ['5.1.1 User unknown']), '550 5.1.1 User unknown');
  assert.equal(formatDiagnostic(451, [4, 3, 0], ['bad\r\nX-Injected: 1']), '451 4.3.0 bad X-Injected: 1');
});

test('dates are RFC 5322 date-times in UTC', () => {
  assert.equal(rfc5322Date(new Date(Date.UTC(2025, 0, 5, 3, 4, 5))), 'Sun, 05 Jan 2025 03:04:05 +0000');
  assert.equal(rfc5322Date(new Date(Date.UTC(2024, 1, 29, 23, 59, 59))), 'Thu, 29 Feb 2024 23:59:59 +0000');
});
