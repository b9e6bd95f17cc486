#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""A FUSE file system that plays a vendor driver's migration attributes.

The never-merged migration_version protocol (read the source's attribute,
write it into the target's; the target driver's store() fails when it
cannot take that state) needs a file whose write really fails at the
file-system level. This serves one directory per simulated device or
mdev type:

    NODE/migration_version   read: the node's version; write: succeeds iff
                             the written string (one trailing newline
                             stripped) is in the node's compatibility
                             table, else fails with the node's errno
                             (EPROTO unless configured)
    NODE/migration_type      read-only, when the node has a type
    dev/NAME                 a stand-in for a VFIO device node: opening it
                             is counted (and any ioctl fails)
    stats                    JSON: writes per node (every attempt),
                             accepted writes, the written values in
                             order, reads per node, opens per dev node

The table is a JSON file given with -o table=PATH:

    {"nodes": {"NODE": {"version": "V", "type": "T", "accept": ["V", ...],
                        "errno": "EPROTO"}},
     "dev": ["NAME", ...]}

Run as a separate process: fusevendor.py MOUNTPOINT -f -s -o table=PATH;
unmount with fusermount -u. Attributes are served with direct_io, so
every read and write reaches this process, as with sysfs.
"""

import errno
import json
import stat
import sys
import threading
import time

import fuse

fuse.fuse_python_api = (0, 2)


class Stat(fuse.Stat):
    def __init__(self, mode, size=0, nlink=1):
        super().__init__()
        now = int(time.time())
        self.st_mode = mode
        self.st_ino = 0
        self.st_dev = 0
        self.st_nlink = nlink
        self.st_uid = 0
        self.st_gid = 0
        self.st_size = size
        self.st_atime = self.st_mtime = self.st_ctime = now


class VendorFS(fuse.Fuse):

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self.table = None
        self.mutex = threading.Lock()
        self.nodes = {}
        self.dev = []
        self.writes = {}
        self.accepted = {}
        self.log = []
        self.reads = {}
        self.opens = {}

    def load(self):
        with open(self.table, encoding='utf-8') as f:
            conf = json.load(f)
        self.nodes = conf.get('nodes', {})
        self.dev = conf.get('dev', [])
        for n, node in self.nodes.items():
            self.writes[n] = self.accepted[n] = self.reads[n] = 0
            node.setdefault('accept', [node['version']])
            node['errno_value'] = getattr(errno, node.get('errno', 'EPROTO'))
        for d in self.dev:
            self.opens[d] = 0

    # what a path is: ('root'|'dir'|'version'|'type'|'stats'|'devdir'|'dev', node)
    def classify(self, path):
        parts = [p for p in path.split('/') if p]
        if not parts:
            return 'root', None
        if parts == ['stats']:
            return 'stats', None
        if parts[0] == 'dev':
            if len(parts) == 1:
                return 'devdir', None
            if len(parts) == 2 and parts[1] in self.dev:
                return 'dev', parts[1]
            return None, None
        node = self.nodes.get(parts[0])
        if node is None:
            return None, None
        if len(parts) == 1:
            return 'dir', parts[0]
        if len(parts) == 2 and parts[1] == 'migration_version':
            return 'version', parts[0]
        if len(parts) == 2 and parts[1] == 'migration_type' and 'type' in node:
            return 'type', parts[0]
        return None, None

    def stats(self):
        with self.mutex:
            return (json.dumps({'writes': self.writes, 'accepted': self.accepted, 'log': self.log,
                                'reads': self.reads, 'opens': self.opens}, sort_keys=True) + '\n').encode()

    def content(self, kind, node):
        if kind == 'version':
            return (self.nodes[node]['version'] + '\n').encode()
        if kind == 'type':
            return (self.nodes[node]['type'] + '\n').encode()
        if kind == 'stats':
            return self.stats()
        return b''

    # fuse operations

    def getattr(self, path):
        kind, _ = self.classify(path)
        if kind in ('root', 'dir', 'devdir'):
            return Stat(stat.S_IFDIR | 0o755, nlink=2)
        if kind == 'version':
            return Stat(stat.S_IFREG | 0o644, 4096)         # as sysfs reports attributes
        if kind in ('type', 'stats'):
            return Stat(stat.S_IFREG | 0o444, 4096)
        if kind == 'dev':
            return Stat(stat.S_IFREG | 0o600, 0)
        return -errno.ENOENT

    def readdir(self, path, offset):
        kind, node = self.classify(path)
        names = []
        if kind == 'root':
            names = ['stats', 'dev', *self.nodes]
        elif kind == 'devdir':
            names = list(self.dev)
        elif kind == 'dir':
            names = ['migration_version'] + (['migration_type'] if 'type' in self.nodes[node] else [])
        for n in ['.', '..', *names]:
            yield fuse.Direntry(n)

    def open(self, path, flags):
        kind, node = self.classify(path)
        if kind is None:
            return -errno.ENOENT
        writing = (flags & 3) != 0
        if kind in ('type', 'stats') and writing:
            return -errno.EACCES
        if kind == 'dev':
            with self.mutex:
                self.opens[node] += 1
        return 0

    def read(self, path, size, offset):
        kind, node = self.classify(path)
        if kind is None:
            return -errno.ENOENT
        if kind == 'version' and offset == 0:
            with self.mutex:
                self.reads[node] += 1
        return self.content(kind, node)[offset:offset + size]

    def write(self, path, buf, offset):
        kind, node = self.classify(path)
        if kind == 'dev':
            return -errno.EIO
        if kind != 'version':
            return -errno.EACCES
        value = bytes(buf)
        if value.endswith(b'\n'):
            value = value[:-1]
        text = value.decode('utf-8', 'replace')
        n = self.nodes[node]
        ok = offset == 0 and text in n['accept']
        with self.mutex:
            self.writes[node] += 1
            self.accepted[node] += ok
            self.log.append([node, text, ok])
        return len(buf) if ok else -n['errno_value']

    def truncate(self, path, size):
        kind, _ = self.classify(path)
        return 0 if kind in ('version', 'dev') else -errno.EACCES


def main():
    fs = VendorFS(version='fusevendor 1', usage='fusevendor.py MOUNTPOINT -f -s -o table=TABLE.json',
                  dash_s_do='setsingle')
    fs.parser.add_option(mountopt='table', metavar='PATH', help='the compatibility table (JSON)')
    fs.parse(values=fs, errex=1)
    if not fs.table:
        sys.exit('fusevendor: -o table=PATH is required')
    fs.load()
    # every read and write reaches us, as every access reaches a sysfs
    # attribute's show() and store()
    fs.fuse_args.optlist.add('direct_io')
    fs.fuse_args.optdict.update(attr_timeout='0', entry_timeout='0')
    fs.main()


if __name__ == '__main__':
    main()
