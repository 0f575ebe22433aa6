// The engine's id patterns in plain JS, for the client SDK (which must not
// load the wasm): the same translation to a regular expression that the
// engine's matcher (globset, with `literal_separator`, no backslash escape,
// `[ ] { }` literal; see src/pattern.rs) makes, token for token, run over
// UTF-8 bytes as globset's `(?-u)` regex does. tests/js/pattern.test.js
// checks it against Engine.matchCount on a generated corpus: the client's
// routing cannot disagree with the server's filtering.

const PREFIX = 'prefix'; // `**/` at the start: any leading directories, or none
const SUFFIX = 'suffix'; // `/**` at the end: a `/` then anything
const MIDDLE = 'middle'; // `/**/` inside: one `/` or `/.../`
const STAR = 'star';
const ANY = 'any';

/** The pattern as UTF-8 bytes, one char per byte (what a `(?-u)` regex sees). */
const bytes = (text) => String.fromCharCode(...new TextEncoder().encode(text));

/** globset's tokens for `source` (its parse_star, without alternation). */
function tokens(source) {
  const out = [];
  let prev = null;
  for (let i = 0; i < source.length; ) {
    const c = source[i];
    if (c === '?') out.push(ANY);
    else if (c !== '*') out.push(c);
    else if (source[i + 1] !== '*') out.push(STAR);
    else {
      i += 1; // the second `*`
      const next = source[i + 1];
      if (out.length === 0) {
        if (next === undefined || next === '/') {
          out.push(PREFIX);
          if (next === '/') i += 1;
        } else out.push(STAR, STAR);
      } else if (prev !== '/' || (next !== undefined && next !== '/')) {
        out.push(STAR, STAR);
      } else {
        if (next === '/') i += 1;
        const popped = out.pop();
        out.push(popped === PREFIX || popped === SUFFIX ? popped : next === undefined ? SUFFIX : MIDDLE);
      }
    }
    prev = source[i];
    i += 1;
  }
  return out;
}

// globset's regex for each token; its `.` is every byte but `\n` (JS's also skips `\r`).
const DOT = '[^\\n]';
const REGEX = { [ANY]: '[^/]', [STAR]: '[^/]*', [PREFIX]: `(?:/?|${DOT}*/)`, [SUFFIX]: `/${DOT}*`, [MIDDLE]: `(?:/|/${DOT}*/)` };
const escape = (c) => c.replace(/[\\^$.*+?()[\]{}|/-]/g, '\\$&');

/**
 * A matcher for one id pattern, with the engine's rules: `*` within a `/`
 * segment, `**` across segments, `?` one character, everything else
 * literal. `**` alone matches every id; a pattern without `*` or `?` is
 * compared as it is.
 */
export function globMatcher(pattern) {
  if (pattern === '**') return () => true;
  if (!/[*?]/.test(pattern)) return (id) => id === pattern;
  const toks = tokens(bytes(pattern));
  const body = toks.length === 1 && toks[0] === PREFIX ? `${DOT}*` : toks.map((t) => REGEX[t] ?? escape(t)).join('');
  const re = new RegExp(`^${body}$`);
  return (id) => re.test(bytes(id));
}
