/**
 * Compares strings in Unicode code point order, which is the byte order of their UTF-8 encoding
 * and so the order LMDB keeps string keys in. (`<` compares UTF-16 units and puts U+1F600 before
 * U+FFFF.) Used where pending overlay entries are merged into an LMDB range.
 */
export function compareCodePoints(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x === y) continue;
    const sx = x >= 0xd800 && x <= 0xdfff;
    const sy = y >= 0xd800 && y <= 0xdfff;
    // A surrogate encodes a code point above U+FFFF, so it sorts after any other BMP unit.
    if (sx !== sy) return sx ? 1 : -1;
    return x - y;
  }
  return a.length - b.length;
}
