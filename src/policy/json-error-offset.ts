/**
 * Where JSON text stops being valid. Node 20's `JSON.parse` messages often carry no position
 * ("Unexpected token '}', ... is not valid JSON"), and a policy author needs a line number, so
 * this small recursive-descent scanner finds the offset of the first invalid character.
 *
 * The same scan finds a key given twice in one object, which `JSON.parse` accepts silently by
 * keeping the last: a plan or credit defined twice would lose the first definition without a
 * word, where YAML (uniqueKeys) rejects the document.
 */

/** Offset of the first character at which `text` is not valid JSON, or undefined when it is valid. */
export function jsonErrorOffset(text: string): number | undefined {
  const found = scan(text, false);
  return found instanceof JsonSyntaxAt ? found.offset : undefined;
}

/** In valid JSON text, the first key repeated within one object: its path (keys and indexes) and offset. */
export function jsonDuplicateKey(text: string): { readonly path: readonly string[]; readonly offset: number } | undefined {
  const found = scan(text, true);
  return found instanceof DuplicateKeyAt ? { path: found.path, offset: found.offset } : undefined;
}

function scan(text: string, findDuplicates: boolean): JsonSyntaxAt | DuplicateKeyAt | undefined {
  let i = 0;
  const path: string[] = [];
  const ws = (): void => {
    while (i < text.length && " \t\n\r".includes(text.charAt(i))) i++;
  };
  const fail = (): never => {
    throw new JsonSyntaxAt(i);
  };
  const literal = (word: string): void => {
    for (const ch of word) {
      if (text.charAt(i) !== ch) fail();
      i++;
    }
  };
  const string = (): void => {
    if (text.charAt(i) !== '"') fail();
    i++;
    for (;;) {
      if (i >= text.length) fail();
      const ch = text.charAt(i);
      if (ch === '"') {
        i++;
        return;
      }
      if (ch < " ") fail();
      if (ch === "\\") {
        i++;
        const esc = text.charAt(i);
        if (esc === "u") {
          for (let k = 0; k < 4; k++) {
            i++;
            if (!/[0-9a-fA-F]/.test(text.charAt(i))) fail();
          }
        } else if (!'"\\/bfnrt'.includes(esc) || esc === "") fail();
      }
      i++;
    }
  };
  const number = (): void => {
    const m = /^-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/.exec(text.slice(i));
    if (!m) fail();
    i += m?.[0].length ?? 0;
  };
  const value = (): void => {
    ws();
    const ch = text.charAt(i);
    if (ch === "{") {
      i++;
      ws();
      if (text.charAt(i) === "}") return void i++;
      const keys = findDuplicates ? new Set<string>() : undefined;
      for (;;) {
        ws();
        const start = i;
        string();
        let key = "";
        if (keys !== undefined) {
          key = JSON.parse(text.slice(start, i)) as string;
          if (keys.has(key)) throw new DuplicateKeyAt([...path, key], start);
          keys.add(key);
        }
        ws();
        if (text.charAt(i) !== ":") fail();
        i++;
        path.push(key);
        value();
        path.pop();
        ws();
        if (text.charAt(i) === ",") i++;
        else if (text.charAt(i) === "}") return void i++;
        else fail();
      }
    }
    if (ch === "[") {
      i++;
      ws();
      if (text.charAt(i) === "]") return void i++;
      for (let index = 0; ; index++) {
        path.push(String(index));
        value();
        path.pop();
        ws();
        if (text.charAt(i) === ",") i++;
        else if (text.charAt(i) === "]") return void i++;
        else fail();
      }
    }
    if (ch === '"') return string();
    if (ch === "t") return literal("true");
    if (ch === "f") return literal("false");
    if (ch === "n") return literal("null");
    return number();
  };
  try {
    value();
    ws();
    if (i < text.length) fail();
    return undefined;
  } catch (e) {
    // Anything else (a stack overflow on absurd nesting) only costs us the line number.
    return e instanceof JsonSyntaxAt || e instanceof DuplicateKeyAt ? e : undefined;
  }
}

/** Internal signal carrying the failing offset out of the recursion. */
class JsonSyntaxAt extends Error {
  constructor(readonly offset: number) {
    super(`invalid JSON at ${offset}`);
  }
}

/** Internal signal carrying a repeated key out of the recursion. */
class DuplicateKeyAt extends Error {
  constructor(
    readonly path: readonly string[],
    readonly offset: number,
  ) {
    super(`duplicate key at ${offset}`);
  }
}

/** 1-based line and column of an offset. */
export function lineColumn(text: string, offset: number): { readonly line: number; readonly column: number } {
  const before = text.slice(0, offset);
  const line = before.split("\n").length;
  return { line, column: offset - before.lastIndexOf("\n") };
}
