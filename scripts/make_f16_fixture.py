# float32 → float16 rounding reference for test/io/safetensors_f16.test.ts: Python's own
# IEEE half packing (struct 'e', round half to even) over special values, exact ties,
# subnormals and random float32 bit patterns near the half range.
#   python3 scripts/make_f16_fixture.py > test/fixtures/f16_round.json
import json, math, random, struct

def bits32(x): return struct.unpack('<I', struct.pack('<f', x))[0]
def f32(b): return struct.unpack('<f', struct.pack('<I', b))[0]
def half(x):
    if math.isnan(x): return 0x7e00 | (0x8000 if math.copysign(1, x) < 0 else 0)
    try: return struct.unpack('<H', struct.pack('<e', x))[0]
    except OverflowError: return 0xfc00 if x < 0 else 0x7c00

rng = random.Random(7)
xs = [0.0, -0.0, 1.0, -2.0, 65504.0, 65519.99, 65520.0, 1e6, -1e6, float('inf'), float('-inf'), 2**-24, 2**-25, 2**-25 * 1.0001, 2**-26, 3 * 2**-25, 2**-14, 2**-14 - 2**-25, 0.1, 1/3]
# exact ties between neighbouring halves (normal and subnormal), both parities
for e in range(-24, 15):
    for m in rng.sample(range(1024), 4):
        lo = (1 + m / 1024) * 2.0**e if e >= -14 else m * 2.0**-24
        step = 2.0**(e - 10) if e >= -14 else 2.0**-24
        for x in (lo + step / 2, -(lo + step / 2), lo + step * 0.499, lo + step * 0.501):
            if bits32(f32(bits32(x))) == bits32(x) and f32(bits32(x)) == x: xs.append(x)
for _ in range(600):
    b = (rng.getrandbits(1) << 31) | (rng.randint(127 - 30, 127 + 17) << 23) | rng.getrandbits(23)
    xs.append(f32(b))
out = [[bits32(x), half(x)] for x in xs]
print(json.dumps({'note': 'pairs of [float32 bits, float16 bits] from Python struct (IEEE round half to even)', 'pairs': out}))
