import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  expandWord,
  expandWords,
  expandWordWithMatches,
  hasUnsetRequired,
  type ExpandOptions,
  type VarLookup,
} from '../../../src/dockerfile/expand.ts';
import { KilnError } from '../../../src/util/errors.ts';

const ENV: Record<string, string> = {
  a: 'hello',
  b: 'bee',
  e: '',
  sp: 'x  y',
  p: 'foo/bar/baz.tar.gz',
  img: 'registry.example.com:5000/team/app:1.2.3',
  dup: 'aXbXc',
  ver: 'v1.2.3',
  lit: 'a*b?c',
  _u: 'under',
  A1: 'alnum',
  é: 'accent',
};
const vars: VarLookup = (n) => (Object.hasOwn(ENV, n) ? ENV[n] : undefined);
const BS: ExpandOptions = { escapeToken: '\\' };
const BT: ExpandOptions = { escapeToken: '`' };

type Row = [name: string, input: string, expected: string, opts?: ExpandOptions];

const wordCases: Row[] = [
  // plain references
  ['$name', '$a', 'hello'],
  ['${name}', '${a}', 'hello'],
  ['name followed by text needs braces', '${a}world', 'helloworld'],
  ['name stops at non-name char', '$a-x', 'hello-x'],
  ['name swallows following name chars', '$aworld', ''],
  ['underscore name', '$_u', 'under'],
  ['alphanumeric name', '$A1', 'alnum'],
  ['unicode letter name', '$é', 'accent'],
  ['unknown variable is empty', 'x${nope}y', 'xy'],
  ['unknown $name is empty', 'x$nope', 'x'],
  ['set-but-empty', '[$e]', '[]'],
  ['text without variables', 'plain/text', 'plain/text'],
  ['empty input', '', ''],
  ['several references', '$a-$b/${a}', 'hello-bee/hello'],
  // literal dollars
  ['$ at end', 'abc$', 'abc$'],
  ['lone $', '$', '$'],
  ['$ before slash', '$/x', '$/x'],
  ['$ before space', 'a $ b', 'a $ b'],
  ['$ before dot', '$.', '$.'],
  ['$ before equals', '$=', '$='],
  ['$$ looks up special param $ (unset)', 'a$$b', 'ab'],
  ['$1 positional is empty', 'x$1y', 'xy'],
  ['$12 reads all digits', 'x$12y', 'xy'],
  ['$@ special is empty', '[$@]', '[]'],
  ['$# special is empty', '[$#]', '[]'],
  ['${1}', '[${1}]', '[]'],
  // :- and -
  [':- set', '${a:-def}', 'hello'],
  [':- empty', '${e:-def}', 'def'],
  [':- unset', '${nope:-def}', 'def'],
  ['- set', '${a-def}', 'hello'],
  ['- empty keeps empty', '[${e-def}]', '[]'],
  ['- unset', '${nope-def}', 'def'],
  [':- empty default', '[${nope:-}]', '[]'],
  // :+ and +
  [':+ set', '${a:+alt}', 'alt'],
  [':+ empty', '[${e:+alt}]', '[]'],
  [':+ unset', '[${nope:+alt}]', '[]'],
  ['+ set', '${a+alt}', 'alt'],
  ['+ empty counts as set', '${e+alt}', 'alt'],
  ['+ unset', '[${nope+alt}]', '[]'],
  // :? and ? when satisfied
  [':? set', '${a:?must}', 'hello'],
  ['? set', '${a?must}', 'hello'],
  ['? empty is fine', '[${e?must}]', '[]'],
  // nesting and words with expansions
  ['nested default', '${nope:-${b:-c}}', 'bee'],
  ['nested default innermost', '${nope:-${e:-c}}', 'c'],
  ['default refers to other var', '${nope:-$a/x}', 'hello/x'],
  ['default with quoted text', '${nope:-"a b"}', 'a b'],
  ['default with single quotes keeps $', "${nope:-'$a'}", '$a'],
  ['default with escaped brace', '${nope:-a\\}b}', 'a}b'],
  ['default with brace in quotes', '${nope:-"}"}', '}'],
  ['alt with nested reference', '${a:+[$b]}', '[bee]'],
  // quotes
  ['single quotes literal', "'$a ${b}'", '$a ${b}'],
  ['single quotes keep backslash', "'a\\b'", 'a\\b'],
  ['double quotes expand', '"$a ${b}"', 'hello bee'],
  ['double quotes keep single quotes', `"it's"`, "it's"],
  ['single quotes keep double quotes', `'say "hi"'`, 'say "hi"'],
  ['adjacent quoted parts join', `a"b"'c'd`, 'abcd'],
  ['empty quotes', `""''`, ''],
  ['escaped quote in double quotes', '"a\\"b"', 'a"b'],
  ['escaped $ in double quotes', '"\\$a"', '$a'],
  ['escaped escape in double quotes', '"a\\\\b"', 'a\\b'],
  ['other escape kept in double quotes', '"a\\nb"', 'a\\nb'],
  // escapes (backslash)
  ['escaped $', '\\$a', '$a'],
  ['escaped ${}', '\\${a}', '${a}'],
  ['escaped quote outside quotes', '\\"x\\"', '"x"'],
  ['escaped single quote', "it\\'s", "it's"],
  ['escape of plain char drops escape', '\\a\\b', 'ab'],
  ['double escape', 'a\\\\b', 'a\\b'],
  ['escape at end is dropped', 'abc\\', 'abc'],
  // escapes (backtick)
  ['backtick escapes $', '`$a', '$a', BT],
  ['backslash is literal with backtick escape', 'C:\\$a', 'C:\\hello', BT],
  ['backtick in double quotes escapes quote', '"a`"b"', 'a"b', BT],
  ['backtick escapes backtick', 'a``b', 'a`b', BT],
  ['backslash in double quotes literal with backtick', '"C:\\dir"', 'C:\\dir', BT],
  // pattern operators
  ['# shortest prefix', '${p#*/}', 'bar/baz.tar.gz'],
  ['## longest prefix', '${p##*/}', 'baz.tar.gz'],
  ['% shortest suffix', '${p%.*}', 'foo/bar/baz.tar'],
  ['%% longest suffix', '${p%%.*}', 'foo/bar/baz'],
  ['# literal prefix', '${ver#v}', '1.2.3'],
  ['# no match leaves value', '${ver#x}', 'v1.2.3'],
  ['% with ? glob', '${ver%.?}', 'v1.2'],
  ['# bracket class', '${ver#[uvw]}', '1.2.3'],
  ['# negated bracket class', '${ver#[!0-9]}', '1.2.3'],
  ['# bracket range no match', '${ver#[0-9]}', 'v1.2.3'],
  ['% escaped glob char is literal', '${lit%\\?c}', 'a*b'],
  ['# escaped star is literal', '${lit#a\\*}', 'b?c'],
  ['%% tag strip', '${img%:*}', 'registry.example.com:5000/team/app'],
  ['## repo name', '${img##*/}', 'app:1.2.3'],
  ['# on unset is empty', '[${nope#*}]', '[]'],
  ['# pattern from variable', '${dup#${nope:-a}}', 'XbXc'],
  ['/ first replacement', '${dup/X/-}', 'a-bXc'],
  ['// all replacements', '${dup//X/-}', 'a-b-c'],
  ['/ glob replacement is longest', '${dup/X*/-}', 'a-'],
  ['/ empty replacement deletes', '${dup//X/}', 'abc'],
  ['/ no match', '${dup/Q/-}', 'aXbXc'],
  ['/ escaped slash in pattern', '${p/\\//:}', 'foo:bar/baz.tar.gz'],
  ['// escaped slash in pattern', '${p//\\//:}', 'foo:bar:baz.tar.gz'],
  ['/ replacement is expanded', '${dup//X/$b}', 'abeebbeec'],
  ['# with backtick escape', '${lit#a`*}', 'b?c', BT],
];

describe('expandWord', () => {
  for (const [name, input, expected, opts] of wordCases) {
    test(`${name}: ${input}`, () => {
      assert.equal(expandWord(input, vars, opts ?? BS), expected);
    });
  }
});

type WordsRow = [name: string, input: string, expected: string[], opts?: ExpandOptions];
const wordsCases: WordsRow[] = [
  ['splits on spaces', 'a b  c', ['a', 'b', 'c']],
  ['splits on tabs and newlines', 'a\tb\nc', ['a', 'b', 'c']],
  ['leading and trailing spaces dropped', '  a  ', ['a']],
  ['empty input gives no words', '', []],
  ['only spaces gives no words', '   ', []],
  ['double-quoted space kept', '"a b" c', ['a b', 'c']],
  ['single-quoted space kept', "'a b' c", ['a b', 'c']],
  ['escaped space kept', 'a\\ b c', ['a b', 'c']],
  ['backtick-escaped space kept', 'a` b c', ['a b', 'c'], BT],
  ['unquoted expansion is split', '$sp', ['x', 'y']],
  ['unquoted expansion joins neighbours', 'p$sp', ['px', 'y']],
  ['quoted expansion is not split', '"$sp"', ['x  y']],
  ['empty quoted words dropped', 'a "" b', ['a', 'b']],
  ['empty expansion dropped', '$e $nope a', ['a']],
  ['default value with space is split when unquoted', '${nope:-1 2}', ['1', '2']],
  ['quoted parts join into one word', `a"b c"'d'`, ['ab cd']],
  ['variables and literals', '--flag=$a $b', ['--flag=hello', 'bee']],
];

describe('expandWords', () => {
  for (const [name, input, expected, opts] of wordsCases) {
    test(`${name}: ${JSON.stringify(input)}`, () => {
      assert.deepEqual(expandWords(input, vars, opts ?? BS), expected);
    });
  }
});

type ErrRow = [name: string, input: string, code: string, fragment: string];
const errorCases: ErrRow[] = [
  ['missing closing brace', '${a', 'BAD_SUBSTITUTION', "missing '}'"],
  ['missing brace after modifier word', '${a:-x', 'BAD_SUBSTITUTION', "missing '}'"],
  ['dangling ${', 'x${', 'BAD_SUBSTITUTION', "missing '}'"],
  ['empty name', '${}', 'BAD_SUBSTITUTION', 'bad substitution'],
  ['colon first', '${:-x}', 'BAD_SUBSTITUTION', 'bad substitution'],
  ['double brace', '${{a}}', 'BAD_SUBSTITUTION', 'bad substitution'],
  ['unsupported :x modifier', '${a:x}', 'BAD_SUBSTITUTION', 'unsupported modifier (:x)'],
  ['unsupported :# modifier', '${a:#x}', 'BAD_SUBSTITUTION', 'unsupported modifier (:#)'],
  ['unsupported space modifier', '${a b}', 'BAD_SUBSTITUTION', 'unsupported modifier ( )'],
  ['missing second slash', '${a/x}', 'BAD_SUBSTITUTION', "missing '/'"],
  [':? unset with message', '${nope:?set it}', 'REQUIRED_VAR', 'variable "nope" is required: set it'],
  [':? empty with message', '${e:?set it}', 'REQUIRED_VAR', 'variable "e" is required: set it'],
  ['? unset with message', '${nope?need}', 'REQUIRED_VAR', 'variable "nope" is required: need'],
  [':? unset without message', '${nope:?}', 'REQUIRED_VAR', 'variable "nope" is not allowed to be unset'],
  [':? empty without message', '${e:?}', 'REQUIRED_VAR', 'variable "e" is not allowed to be empty'],
  ['? message is expanded', '${nope?need $a}', 'REQUIRED_VAR', 'is required: need hello'],
  ['required inside default', '${nope:-${other:?x}}', 'REQUIRED_VAR', 'variable "other"'],
  ['required inside double quotes', '"${nope:?x}"', 'REQUIRED_VAR', 'variable "nope"'],
  ['unterminated double quote', '"abc', 'UNTERMINATED_QUOTE', 'double-quote'],
  ['unterminated single quote', "'abc", 'UNTERMINATED_QUOTE', 'single-quote'],
];

describe('errors', () => {
  for (const [name, input, code, fragment] of errorCases) {
    test(`${name}: ${input}`, () => {
      for (const fn of [expandWord, expandWords]) {
        assert.throws(
          () => fn(input, vars, BS),
          (e: unknown) => {
            assert.ok(e instanceof KilnError, 'is a KilnError');
            assert.equal(e.category, 'dockerfile');
            assert.equal(e.code, code);
            assert.ok(e.message.includes(fragment), `message ${JSON.stringify(e.message)} has ${fragment}`);
            assert.ok(e.message.includes(JSON.stringify(input)), `message quotes the text: ${e.message}`);
            assert.ok(e.hint && e.hint.length > 0, 'has a hint');
            assert.ok(!e.message.includes('\n'), 'one line');
            return true;
          },
        );
      }
    });
  }
});

describe('onUse and matches', () => {
  const useCases: [input: string, used: string[]][] = [
    ['$a', ['a']],
    ['${nope}', ['nope']],
    ['${nope:-$b}', ['b', 'nope']],
    ['${a:+${b}}', ['a', 'b']],
    ['${p##*/}', ['p']],
    ['${dup//X/$a}', ['a', 'dup']],
    ["'$a' \\$b", []],
    ['"$a" $e', ['a', 'e']],
    ['plain', []],
  ];
  for (const [input, used] of useCases) {
    test(`onUse reports ${JSON.stringify(used)} for ${input}`, () => {
      const seen: string[] = [];
      expandWord(input, vars, { escapeToken: '\\', onUse: (n) => seen.push(n) });
      assert.deepEqual([...new Set(seen)].sort(), used);
    });
  }

  test('onUse is called for variables in expandWords too', () => {
    const seen: string[] = [];
    expandWords('$a ${nope:-x}', vars, { escapeToken: '\\', onUse: (n) => seen.push(n) });
    assert.deepEqual(seen.sort(), ['a', 'nope']);
  });

  test('expandWordWithMatches splits matched from unmatched', () => {
    const r = expandWordWithMatches('$a ${e} ${nope:-$sp}', vars, BS);
    assert.equal(r.result, 'hello  x  y');
    assert.deepEqual(r.words, ['hello', 'x', 'y']);
    assert.deepEqual([...r.matched].sort(), ['a', 'e', 'sp']);
    assert.deepEqual([...r.unmatched].sort(), ['nope']);
  });

  test('hasUnsetRequired', () => {
    assert.equal(hasUnsetRequired('${nope:?x}', vars, BS), true);
    assert.equal(hasUnsetRequired('${e:?x}', vars, BS), true);
    assert.equal(hasUnsetRequired('${a:?x}', vars, BS), false);
    assert.equal(hasUnsetRequired('${a', vars, BS), false);
  });
});
