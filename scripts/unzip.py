#!/usr/bin/env python3
"""Unpack a zip keeping each entry's unix mode (as the CodeDeploy agent does; Python's
zipfile alone drops the execute bits). Usage: scripts/unzip.py FILE.zip DIR"""
import os
import sys
import zipfile

src, dest = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(src) as z:
    for info in z.infolist():
        path = z.extract(info, dest)
        mode = (info.external_attr >> 16) & 0o7777
        if mode:
            os.chmod(path, mode)
