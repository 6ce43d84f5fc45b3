/**
 * Copying plain objects on hot paths.
 *
 * Why: on Node 20 (V8 11.3) an object literal that starts with a spread and has members after
 * it (`{ ...a, b: 1 }`) gets a hidden class of its own on every evaluation: the members after
 * the spread are added as fresh map transitions each time. Each evaluation then costs about
 * 1.7 µs instead of about 0.1 µs, every such object is a new shape to the inline caches and the
 * optimised code that later reads it ("wrong map" deoptimisations), and the maps themselves are
 * old-space garbage. `Object.assign` onto a fresh `{}` walks the ordinary, cached transitions.
 * docs/decisions.md B14 has the measurements.
 *
 * Rule: code that runs per message or per attempt uses `merged` (or builds the object member by
 * member) instead of a literal that starts with a spread. Only for plain data objects: sources
 * are read with their own enumerable properties, as a spread does; the target is a new plain
 * object, so no setter runs. Not for objects parsed from untrusted input, where an own
 * `__proto__` key would set the copy's prototype instead of becoming a property.
 */

type OptionalKeys<T> = { [K in keyof T]-?: {} extends Pick<T, K> ? K : never }[keyof T];

/** The type TypeScript gives `{ ...A, ...B }`: an optional member of B keeps A's type beside its own. */
export type Spread<A, B> = Omit<A, keyof B>
  & Omit<B, OptionalKeys<B>>
  & { [K in OptionalKeys<B> & keyof A]: A[K] | Exclude<B[K], undefined> }
  & { [K in Exclude<OptionalKeys<B>, keyof A>]?: B[K] };

/** `{ ...a, ...b }`, through cached hidden classes. */
export function merged<A extends object, B extends object>(a: A, b: B): Spread<A, B> {
  return Object.assign({}, a, b) as Spread<A, B>;
}
