// Safe unpickler: plain data across protocols 0/2/4/5, inert placeholders for every
// non-whitelisted global (nothing is ever executed), and clean errors on bad input.

import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { PickleGlobal, PickleObject, unpickle } from '../../src/io/formats/pickle.ts';
import { assertCleanFailure, fixture, P, rng } from './helpers.ts';

for (const proto of [0, 2, 4, 5]) {
  test(`plain data pickled with protocol ${proto}`, () => {
    const v = unpickle(fs.readFileSync(fixture(`data_p${proto}.pkl`)), { fileName: `data_p${proto}.pkl` }) as Map<string, unknown>;
    assert.ok(v instanceof Map);
    assert.equal(v.get('none'), null);
    assert.equal(v.get('t'), true);
    assert.equal(v.get('f'), false);
    assert.deepEqual(v.get('ints'), [0, 1, 255, 256, 65535, 65536, -1, -(2 ** 31), 2 ** 31 - 1, 2 ** 31, 2n ** 63n, -(2n ** 70n)]);
    const floats = v.get('floats') as number[];
    assert.deepEqual(floats, [1.5, -0, Infinity, -2.25e-300]);
    assert.ok(Object.is(floats[1], -0));
    assert.deepEqual(v.get('strs'), ['', 'héllo ✓', 'a\\b\nc', 'x'.repeat(300)]);
    const bytes = v.get('bytes') as Uint8Array;
    assert.equal(Object.getPrototypeOf(bytes), Uint8Array.prototype);
    assert.deepEqual([...bytes], [0, 255, 97, 98]);
    assert.deepEqual(v.get('tuple'), [1, 'two', 3]);
    assert.ok(Object.isFrozen(v.get('tuple')), 'tuples are frozen arrays');
    assert.deepEqual(v.get('empty_tuple'), []);
    assert.deepEqual(v.get('nested'), [[1, [2, [3]]], new Map([['k', [4]]])]);
    assert.deepEqual(v.get('intkeys'), new Map<number, string>([[0, 'zero'], [7, 'seven']]));
    assert.deepEqual(v.get('set'), new Set([3]));
    assert.deepEqual(v.get('fset'), new Set([4]));
    assert.equal(v.get('shared1'), v.get('shared2'), 'memo keeps shared references shared');
    assert.deepEqual([...(v.get('od') as Map<string, number>)], [['b', 1], ['a', 2]]);
  });
}

test('non-whitelisted globals become inert placeholders (REDUCE, NEWOBJ + BUILD, SETITEMS)', () => {
  const evil = P.bytes(
    P.proto(2), P.EMPTY_DICT, P.MARK,
    P.str('sys'), P.global('os', 'system'), P.str('touch /tmp/latentkit_never'), P.TUPLE1, P.REDUCE,
    P.str('eval'), P.global('__builtin__', 'eval'), P.str('1+1'), P.TUPLE1, P.REDUCE,
    P.str('ns'), P.global('argparse', 'Namespace'), P.EMPTY_TUPLE, P.NEWOBJ, P.EMPTY_DICT, P.str('lr'), P.int1(3), P.SETITEM, P.BUILD,
    P.str('dsub'), P.global('lightning.fabric.utilities.data', 'AttributeDict'), P.EMPTY_TUPLE, P.NEWOBJ, P.str('k'), P.int1(1), P.SETITEM,
    P.str('ref'), P.str('builtins'), P.str('exec'), P.STACK_GLOBAL,
    P.SETITEMS, P.STOP,
  );
  const v = unpickle(evil) as Map<string, unknown>;
  const sys = v.get('sys') as PickleObject;
  assert.ok(sys instanceof PickleObject);
  assert.equal(sys.__global__, 'os.system');
  assert.deepEqual(sys.args, ['touch /tmp/latentkit_never']);
  assert.equal((v.get('eval') as PickleObject).__global__, 'builtins.eval', 'py2 module names are mapped');
  const ns = v.get('ns') as PickleObject;
  assert.equal(ns.newobj, true);
  assert.deepEqual(ns.state, new Map([['lr', 3]]));
  assert.deepEqual((v.get('dsub') as PickleObject).dictItems, new Map([['k', 1]]));
  assert.ok(v.get('ref') instanceof PickleGlobal);
  assert.equal((v.get('ref') as PickleGlobal).__global__, 'builtins.exec');
  assert.equal(fs.existsSync('/tmp/latentkit_never'), false);
});

test('whitelisted safe builtins build data; custom builders and persistent ids are used', () => {
  const b = P.bytes(
    P.proto(2), P.MARK,
    P.global('collections', 'OrderedDict'), P.EMPTY_TUPLE, P.REDUCE, P.str('a'), P.int1(1), P.SETITEM,
    P.global('_codecs', 'encode'), P.str('\u00ff\u0001'), P.str('latin1'), P.TUPLE2, P.REDUCE,
    P.global('__builtin__', 'set'), P.EMPTY_LIST, P.int1(5), P.APPEND, P.TUPLE1, P.REDUCE,
    P.global('my.mod', 'double'), P.int1(21), P.TUPLE1, P.REDUCE,
    P.str('pid'), P.BINPERSID,
    P.TUPLE, P.STOP,
  );
  const v = unpickle(b, {
    builders: { 'my.mod.double': (a) => (a[0] as number) * 2 },
    persistentLoad: (pid) => `loaded:${String(pid)}`,
  }) as unknown[];
  assert.deepEqual(v[0], new Map([['a', 1]]));
  assert.deepEqual([...(v[1] as Uint8Array)], [255, 1]);
  assert.deepEqual(v[2], new Set([5]));
  assert.equal(v[3], 42);
  assert.equal(v[4], 'loaded:pid');
});

const bad: [string, number[], RegExp][] = [
  ['unknown opcode', [0x80, 2, 0xff], /unknown opcode 0xff/],
  ['stack underflow', [0x80, 2, P.TUPLE2, P.STOP], /stack underflow/],
  ['underflow below a MARK', [0x80, 2, P.NONE, P.MARK, P.TUPLE1], /stack underflow/],
  ['truncated string', [0x80, 2, 0x58, 100, 0, 0, 0, 65], /truncated/],
  ['truncated (no STOP)', [0x80, 2, P.NONE], /truncated/],
  ['huge length', [0x80, 4, 0x8d, 255, 255, 255, 255, 255, 255, 255, 127], /exceeds the pickle size/],
  ['missing memo', [0x80, 2, 0x68, 7, P.STOP], /memo key 7 not found/],
  ['no MARK', [0x80, 2, P.TUPLE], /no MARK/],
  ['empty STOP', [0x80, 2, P.STOP], /STOP with an empty stack/],
  ['protocol 6', [0x80, 6, P.NONE, P.STOP], /unsupported pickle protocol 6/],
  ['persistent id without loader', [0x80, 2, P.NONE, P.BINPERSID, P.STOP], /no persistent loader/],
  ['STACK_GLOBAL of non-strings', [0x80, 4, P.NONE, P.NONE, P.STACK_GLOBAL, P.STOP], /two strings/],
  ['REDUCE on data', [0x80, 2, 0x4b, 1, P.EMPTY_TUPLE, P.REDUCE, P.STOP], /cannot call number/],
  ['SETITEM on a list', [0x80, 2, P.EMPTY_LIST, P.NONE, P.NONE, P.SETITEM, P.STOP], /cannot set items on list/],
  ['APPEND on a tuple', [0x80, 2, P.EMPTY_TUPLE, P.NONE, P.APPEND, P.STOP], /cannot append to tuple/],
  ['bad utf-8', [0x80, 2, 0x8c, 1, 0xff, P.STOP], /invalid UTF-8/],
  ['EXT1', [0x80, 2, 0x82, 1, P.STOP], /extension-registry/],
];
for (const [name, bytes, re] of bad) {
  test(`rejects: ${name}`, () => {
    assert.throws(() => unpickle(new Uint8Array(bytes), { fileName: 'x.pkl' }), (e: Error) => {
      assert.equal(e.constructor, Error);
      assert.match(e.message, /^x\.pkl: pickle: at byte \d+ /);
      assert.match(e.message, re);
      return true;
    });
  });
}

test('fuzz: 300 mutations of real pickles fail cleanly or decode', () => {
  const rand = rng(7);
  for (const proto of [0, 2, 4]) {
    const good = fs.readFileSync(fixture(`data_p${proto}.pkl`));
    for (let it = 0; it < 100; it++) {
      const b = new Uint8Array(good);
      for (let k = 0; k < 1 + Math.floor(rand() * 4); k++) b[Math.floor(rand() * b.length)] = Math.floor(rand() * 256);
      const input = rand() < 0.2 ? b.subarray(0, Math.floor(rand() * b.length)) : b;
      assertCleanFailure(() => unpickle(input, { fileName: 'f.pkl' }), 'f.pkl', `p${proto} iteration ${it}`);
    }
  }
});
