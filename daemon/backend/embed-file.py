#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
# Turns a text file into a C string constant: embed-file.py NAME IN OUT
import sys

name, src, dst = sys.argv[1:4]
data = open(src, encoding='utf-8').read()
with open(dst, 'w', encoding='utf-8') as out:
    out.write('/* generated from %s, do not edit */\n' % src.split('/')[-1])
    out.write('const char %s[] =\n' % name)
    for line in data.splitlines(keepends=True):
        out.write('        "%s"\n' % line.replace('\\', '\\\\').replace('"', '\\"').replace('\n', '\\n'))
    out.write('        ;\n')
