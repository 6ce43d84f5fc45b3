/**
 * `StringMatch` of the control-socket schema (halon-api.md §5.3) as a predicate. Pure.
 *
 * EXACT compares the whole string, PARTIAL looks for a substring, REGEX searches with a
 * JavaScript regular expression (unanchored, as PARTIAL; write ^…$ to anchor); `caseless`
 * ignores case for all three; `exclude` negates the result. An absent value matches only the
 * empty string under EXACT and everything under PARTIAL/REGEX.
 * Errors: an invalid regular expression throws a ControlError naming it.
 * The control socket is an administrator's interface, so a regular expression is trusted
 * input; its run time is the administrator's responsibility, as with Halon's PCRE.
 */
import { ControlError } from './context';
import type { StringMatch } from './messages';

export type StringPredicate = (s: string) => boolean;

export function compileStringMatch(m: StringMatch): StringPredicate {
  const value = m.value ?? '';
  const caseless = m.caseless === true;
  let test: StringPredicate;
  switch (m.type ?? 'EXACT') {
    case 'EXACT':
      test = caseless ? (s) => s.toLowerCase() === value.toLowerCase() : (s) => s === value;
      break;
    case 'PARTIAL':
      test = caseless ? (s) => s.toLowerCase().includes(value.toLowerCase()) : (s) => s.includes(value);
      break;
    case 'REGEX': {
      let re: RegExp;
      try {
        re = new RegExp(value, caseless ? 'iu' : 'u');
      } catch (err) {
        throw new ControlError(`invalid regular expression ${JSON.stringify(value)}: ${(err as Error).message}`);
      }
      test = (s) => re.test(s);
      break;
    }
  }
  return m.exclude ? (s) => !test(s) : test;
}
