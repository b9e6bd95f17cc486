#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Writes the seed corpus of fuzz-stream: streams in the vfiomig format
(man org.vfiomig1(5), STREAM FORMAT), valid ones and ones damaged in each
way the reader must refuse, each behind the two bytes that seed how
fuzz-stream cuts its input into pushes.

    tests/fuzz/make-stream-seeds.py tests/fuzz/corpus/stream
"""

import os
import struct
import sys

MAGIC = b'VFIOMIG\x01'
PRECOPY, STOPCOPY, END = 1, 2, 3


def crc32c(data, crc=0):
    crc ^= 0xffffffff
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82f63b78 if crc & 1 else 0)
    return crc ^ 0xffffffff


def header(mtype=b'mtty-2', version=b'', device=b'5b7d1e0a-2c4f-4d8e-9a31-7c0e6f2a0001',
           flags=0b111, expected=0, fmt=1):
    strings = b''.join(struct.pack('<H', len(s)) + s for s in (mtype, version, device))
    length = 24 + len(strings) + 4
    body = MAGIC + struct.pack('<HHIQ', fmt, length, flags, expected) + strings
    return body + struct.pack('<I', crc32c(body))


def record(kind, seq, payload, reserved=0):
    head = struct.pack('<IIII', kind, len(payload), seq, crc32c(payload))
    return head + struct.pack('<II', crc32c(head), reserved) + payload


def end(seq, nbytes, nrecords):
    return record(END, seq, struct.pack('<QQ', nbytes, nrecords))


def stream(*payloads):
    """A complete stream: pre-copy records, then one stop-copy record."""
    out = header(expected=sum(len(p) for p in payloads))
    for i, p in enumerate(payloads):
        out += record(STOPCOPY if i == len(payloads) - 1 else PRECOPY, i, p)
    return out + end(len(payloads), sum(len(p) for p in payloads), len(payloads))


def flip(data, offset):
    return data[:offset] + bytes([data[offset] ^ 0x40]) + data[offset + 1:]


def seeds():
    good = stream(b'page one', bytes(range(256)) * 4, b'stop-copy')
    hdr = len(header(expected=8 + 1024 + 9))
    yield 'valid', good
    yield 'valid-empty', header() + end(0, 0, 0)
    yield 'valid-version', header(version=b'28.39.1010', mtype=b'mlx5_vfio_pci-0x15b3-0x101e') + \
        record(STOPCOPY, 0, b'x' * 4096) + end(1, 4096, 1)
    yield 'valid-no-strings', header(mtype=b'', device=b'') + end(0, 0, 0)
    yield 'valid-utf8', header(mtype='gerät'.encode(), device='ü'.encode()) + end(0, 0, 0)
    yield 'truncated-header', good[:hdr - 3]
    yield 'truncated-head', good[:hdr + 10]
    yield 'truncated-payload', good[:hdr + 24 + 3]
    yield 'truncated-end', good[:-1]
    yield 'header-only', good[:hdr]
    yield 'trailing', good + b'\0'
    yield 'bad-magic', b'VFIOMIH\x01' + good[8:]
    yield 'bad-version', header(fmt=2) + end(0, 0, 0)
    yield 'bad-header-crc', flip(good, hdr - 1)
    yield 'bad-head-crc', flip(good, hdr + 16)
    yield 'bad-payload-crc', flip(good, hdr + 24)
    yield 'bad-reserved', header() + record(PRECOPY, 0, b'abc', reserved=1) + end(1, 3, 1)
    yield 'bad-seq', header() + record(PRECOPY, 1, b'abc') + end(2, 3, 1)
    yield 'bad-kind', header() + record(7, 0, b'abc') + end(1, 3, 1)
    yield 'precopy-after-stopcopy', header() + record(STOPCOPY, 0, b'a') + record(PRECOPY, 1, b'b') + \
        end(2, 2, 2)
    yield 'end-wrong-totals', header() + record(PRECOPY, 0, b'abc') + end(1, 4, 1)
    yield 'end-wrong-records', header() + record(PRECOPY, 0, b'abc') + end(1, 3, 2)
    yield 'end-short', header() + record(END, 0, b'12345678')
    yield 'nul-in-string', header(mtype=b'mtty\0-2') + end(0, 0, 0)
    yield 'not-utf8', header(device=b'\xff\xfe') + end(0, 0, 0)
    yield 'long-string', header(version=b'v' * 4097) + end(0, 0, 0)
    yield 'header-length-too-small', MAGIC + struct.pack('<HH', 1, 10) + bytes(20)
    head = struct.pack('<IIII', PRECOPY, 4 * 1024 * 1024 + 1, 0, 0)
    yield 'record-too-long', header() + head + struct.pack('<II', crc32c(head), 0)
    yield 'empty', b''
    # reported: an empty stream reached pointer arithmetic on NULL
    yield 'single-01', b'\x01'


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    for i, (name, data) in enumerate(seeds()):
        # two bytes for fuzz-stream's piece sizes: a different cut each
        with open(os.path.join(out, name), 'wb') as f:
            f.write(bytes([i * 37 % 256, i * 11 % 256]) + data)


if __name__ == '__main__':
    main()
