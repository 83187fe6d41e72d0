// A small subset of Consul's `?filter=` expression language (go-bexpr) for the Consul API
// simulator: selectors, ==, !=, in, not in, contains, is empty, matches, and, or, not, parentheses.

export class FilterSyntaxError extends Error {}

type Value = string;

type Node =
  | { kind: 'and' | 'or'; left: Node; right: Node }
  | { kind: 'not'; operand: Node }
  | { kind: 'equal' | 'notEqual' | 'matches' | 'notMatches' | 'contains' | 'notContains'; selector: string[]; value: Value }
  | { kind: 'in' | 'notIn'; selector: string[]; value: Value }
  | { kind: 'empty' | 'notEmpty'; selector: string[] };

type Token =
  | { type: 'string'; text: string }
  | { type: 'word'; text: string }
  | { type: 'op'; text: '==' | '!=' | '(' | ')' | '.' };

function tokenize(source: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < source.length) {
    const c = source[i]!;
    if (/\s/.test(c)) { i++; continue; }
    if (c === '"' || c === '`') {
      const end = source.indexOf(c, i + 1);
      if (end < 0) throw new FilterSyntaxError(`unterminated string starting at ${i}`);
      const raw = source.slice(i + 1, end);
      // bexpr strings in double quotes take Go escapes; JSON.parse covers the ones used in practice.
      tokens.push({ type: 'string', text: c === '"' ? JSON.parse(`"${raw}"`) as string : raw });
      i = end + 1;
      continue;
    }
    const two = source.slice(i, i + 2);
    if (two === '==' || two === '!=') { tokens.push({ type: 'op', text: two }); i += 2; continue; }
    if (c === '(' || c === ')' || c === '.') { tokens.push({ type: 'op', text: c }); i++; continue; }
    const word = /^[A-Za-z0-9_\-:/]+/.exec(source.slice(i));
    if (!word) throw new FilterSyntaxError(`unexpected character ${JSON.stringify(c)} at ${i}`);
    tokens.push({ type: 'word', text: word[0] });
    i += word[0].length;
  }
  return tokens;
}

class Parser {
  private position = 0;
  constructor(private readonly tokens: Token[]) {}

  parse(): Node {
    const node = this.or();
    if (this.position < this.tokens.length) throw new FilterSyntaxError(`unexpected ${this.describe(this.peek())}`);
    return node;
  }

  private peek(offset = 0): Token | undefined { return this.tokens[this.position + offset]; }
  private describe(token: Token | undefined): string { return token ? JSON.stringify(token.text) : 'end of expression'; }
  private isWord(text: string, offset = 0): boolean {
    const token = this.peek(offset);
    return token?.type === 'word' && token.text.toLowerCase() === text;
  }
  private next(): Token {
    const token = this.tokens[this.position++];
    if (!token) throw new FilterSyntaxError('unexpected end of expression');
    return token;
  }

  private or(): Node {
    let left = this.and();
    while (this.isWord('or')) { this.position++; left = { kind: 'or', left, right: this.and() }; }
    return left;
  }

  private and(): Node {
    let left = this.not();
    while (this.isWord('and')) { this.position++; left = { kind: 'and', left, right: this.not() }; }
    return left;
  }

  private not(): Node {
    if (this.isWord('not')) { this.position++; return { kind: 'not', operand: this.not() }; }
    return this.primary();
  }

  private primary(): Node {
    const token = this.peek();
    if (token?.type === 'op' && token.text === '(') {
      this.position++;
      const inner = this.or();
      const close = this.next();
      if (close.type !== 'op' || close.text !== ')') throw new FilterSyntaxError(`expected ")", got ${this.describe(close)}`);
      return inner;
    }
    if (token?.type === 'string') {
      this.position++;
      if (this.isWord('in')) { this.position++; return { kind: 'in', value: token.text, selector: this.selector() }; }
      if (this.isWord('not') && this.isWord('in', 1)) { this.position += 2; return { kind: 'notIn', value: token.text, selector: this.selector() }; }
      throw new FilterSyntaxError(`expected "in" or "not in" after ${JSON.stringify(token.text)}`);
    }
    const selector = this.selector();
    const op = this.next();
    if (op.type === 'op' && op.text === '==') return { kind: 'equal', selector, value: this.value() };
    if (op.type === 'op' && op.text === '!=') return { kind: 'notEqual', selector, value: this.value() };
    if (op.type === 'word') {
      const word = op.text.toLowerCase();
      if (word === 'contains') return { kind: 'contains', selector, value: this.value() };
      if (word === 'matches') return { kind: 'matches', selector, value: this.value() };
      if (word === 'is') {
        if (this.isWord('not')) { this.position++; this.expectWord('empty'); return { kind: 'notEmpty', selector }; }
        this.expectWord('empty');
        return { kind: 'empty', selector };
      }
      if (word === 'not') {
        const what = this.next();
        if (what.type === 'word' && what.text.toLowerCase() === 'contains') return { kind: 'notContains', selector, value: this.value() };
        if (what.type === 'word' && what.text.toLowerCase() === 'matches') return { kind: 'notMatches', selector, value: this.value() };
        throw new FilterSyntaxError(`expected "contains" or "matches" after "not", got ${this.describe(what)}`);
      }
    }
    throw new FilterSyntaxError(`expected a match operator after ${selector.join('.')}, got ${this.describe(op)}`);
  }

  private expectWord(text: string): void {
    const token = this.next();
    if (token.type !== 'word' || token.text.toLowerCase() !== text) throw new FilterSyntaxError(`expected "${text}", got ${this.describe(token)}`);
  }

  private selector(): string[] {
    const first = this.next();
    if (first.type !== 'word') throw new FilterSyntaxError(`expected a selector, got ${this.describe(first)}`);
    const parts = [first.text];
    while (this.peek()?.type === 'op' && this.peek()?.text === '.') {
      this.position++;
      const part = this.next();
      if (part.type !== 'word') throw new FilterSyntaxError(`expected a selector part after ".", got ${this.describe(part)}`);
      parts.push(part.text);
    }
    return parts;
  }

  private value(): Value {
    const token = this.next();
    if (token.type === 'op') throw new FilterSyntaxError(`expected a value, got ${this.describe(token)}`);
    return token.text;
  }
}

function resolve(target: unknown, selector: string[]): unknown {
  let current: unknown = target;
  for (const part of selector) {
    if (current === null || typeof current !== 'object' || Array.isArray(current)) return undefined;
    current = (current as Record<string, unknown>)[part];
  }
  return current;
}

function scalarText(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return undefined;
}

function isEmpty(value: unknown): boolean {
  if (value === undefined || value === null || value === '') return true;
  if (Array.isArray(value)) return value.length === 0;
  if (typeof value === 'object') return Object.keys(value).length === 0;
  return false;
}

/** `"v" in X`: an element of a list, a key of a map, a substring of a string. */
function contains(container: unknown, value: string): boolean {
  if (Array.isArray(container)) return container.some((item) => scalarText(item) === value);
  if (typeof container === 'string') return container.includes(value);
  if (container !== null && typeof container === 'object') return Object.prototype.hasOwnProperty.call(container, value);
  return false;
}

function evaluate(node: Node, target: unknown): boolean {
  switch (node.kind) {
    case 'and': return evaluate(node.left, target) && evaluate(node.right, target);
    case 'or': return evaluate(node.left, target) || evaluate(node.right, target);
    case 'not': return !evaluate(node.operand, target);
    case 'equal': return scalarText(resolve(target, node.selector)) === node.value;
    case 'notEqual': return scalarText(resolve(target, node.selector)) !== node.value;
    case 'matches': return new RegExp(node.value).test(scalarText(resolve(target, node.selector)) ?? '');
    case 'notMatches': return !new RegExp(node.value).test(scalarText(resolve(target, node.selector)) ?? '');
    case 'contains': case 'in': return contains(resolve(target, node.selector), node.value);
    case 'notContains': case 'notIn': return !contains(resolve(target, node.selector), node.value);
    case 'empty': return isEmpty(resolve(target, node.selector));
    case 'notEmpty': return !isEmpty(resolve(target, node.selector));
  }
}

/** Compiles a filter expression; throws FilterSyntaxError with a reason on bad input. */
export function compileFilter(expression: string): (target: unknown) => boolean {
  const tree = new Parser(tokenize(expression)).parse();
  return (target) => evaluate(tree, target);
}
