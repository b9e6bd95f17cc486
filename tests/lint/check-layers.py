#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The daemon's folders are layers: a file may include headers of its own
layer and the ones below it, never above, and modules (a .c with its .h)
include each other without a circle. Includes name the folder
("compat/compat-map.h"), so that every one is seen here. Usage:
check-layers.py DAEMON_DIR"""
import os
import re
import sys

# lowest first; main.c and manager.[ch] sit on top and wire the rest
LAYERS = ['', 'backend', 'compat', 'libvirt', 'migration', 'bus', 'top']
TOP = {'main.c', 'manager.c', 'manager.h'}
# files that implement another module's header
PART_OF = {'worker-migrate': 'worker', 'worker-stream': 'worker', 'bus-introspect': 'bus-objects'}


def layer_of(path):
    return 'top' if path in TOP else os.path.dirname(path)


def module_of(path):
    stem = os.path.splitext(os.path.basename(path))[0]
    stem = stem[:-len('-internal')] if stem.endswith('-internal') else stem
    return PART_OF.get(stem, stem)


def sources(root):
    for folder in [''] + LAYERS[1:-1]:
        d = os.path.join(root, folder)
        if not os.path.isdir(d):
            continue
        for name in sorted(os.listdir(d)):
            if name.endswith(('.c', '.h')):
                yield os.path.join(folder, name)


def includes(root, path, problems):
    """The daemon's headers path includes, as paths under root. The
    compiler also finds a header next to the including file: such an
    include would slip past the checks below, so it is one of the
    problems."""
    text = open(os.path.join(root, path), encoding='utf-8').read()
    for inc in re.findall(r'^#include "([^"]+)"', text, re.M):
        if os.path.exists(os.path.join(root, inc)):
            yield inc
        elif os.path.dirname(path) and os.path.exists(os.path.join(root, os.path.dirname(path), inc)):
            problems.append(f'{path} includes "{inc}" without its folder')
            yield os.path.join(os.path.dirname(path), inc)


def find_cycle(graph):
    state = {}

    def visit(n, stack):
        state[n] = 'open'
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 'open':
                return stack[stack.index(m):] + [m]
            if m not in state:
                c = visit(m, stack + [m])
                if c:
                    return c
        state[n] = 'done'
        return None

    for n in sorted(graph):
        if n not in state:
            c = visit(n, [n])
            if c:
                return c
    return None


def main(root):
    problems = []
    graph = {}
    for path in sources(root):
        here = layer_of(path)
        for inc in includes(root, path, problems):
            there = layer_of(inc)
            if there not in LAYERS:
                continue
            if LAYERS.index(there) > LAYERS.index(here if here in LAYERS else 'top'):
                problems.append(f'{path} ({here or "core"}) includes {inc} ({there}), a layer above it')
            a, b = module_of(path), module_of(inc)
            if a != b:
                graph.setdefault(a, set()).add(b)
    cycle = find_cycle(graph)
    if cycle:
        problems.append('modules include each other in a circle: ' + ' -> '.join(cycle))
    for p in problems:
        print(p)
    print(f'{sum(len(v) for v in graph.values())} module dependencies checked, {len(problems)} problems')
    return 1 if problems else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1]))
