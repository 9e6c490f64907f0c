# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""psql scripts read from a repository are data until proven otherwise: the meta-commands a script holds, found
as psql's own lexer finds them, and the check that refuses any pg_dumpall does not write."""

import re

from ansible_collections.keel.ops.plugins.module_utils._errors import PostgresError


# The only meta-commands pg_dumpall writes into globals: \restrict and \unrestrict (PostgreSQL 17.6, 16.10,
# 15.14, 14.19, 13.22 and later), each with a random alphanumeric key.
_ALLOWED_META = re.compile(r"\\(?:un)?restrict [A-Za-z0-9]+[ \t]*$")


_DOLLAR_TAG = re.compile(r"\$(?:[A-Za-z_][A-Za-z0-9_]*)?\$")


def meta_commands(script):
    """(line, text) of every psql meta-command in `script`: a backslash outside literals, quoted identifiers,
    dollar quotes and comments, as psql's own lexer finds them."""
    found, i, line, size = [], 0, 1, len(script)
    while i < size:
        char = script[i]
        if char == "\n":
            line += 1
        if char == "\\":
            end = script.find("\n", i)
            end = size if end < 0 else end
            found.append((line, script[i:end]))
            i = end
            continue
        skip = _skip_quoted(script, i)
        if skip:
            line += script.count("\n", i, skip)
            i = skip
            continue
        i += 1
    return found


def _skip_quoted(script, i):
    """The index just past a literal, identifier, dollar quote or comment starting at i; 0 if none starts."""
    two = script[i:i + 2]
    if two == "--":
        end = script.find("\n", i)
        return len(script) if end < 0 else end
    if two == "/*":
        depth, j = 1, i + 2
        while j < len(script) and depth:
            depth += {"/*": 1, "*/": -1}.get(script[j:j + 2], 0)
            j += 2 if script[j:j + 2] in ("/*", "*/") else 1
        return j
    char = script[i]
    if char in "'\"":
        # E'...' strings take backslash escapes; the E must start a word (not end one, as in "fee'").
        escapes = char == "'" and i > 0 and script[i - 1] in "eE" and not script[max(i - 2, 0):i - 1].isalnum()
        j = i + 1
        while j < len(script):
            if escapes and script[j] == "\\":
                j += 2
                continue
            if script[j] == char:
                if script[j + 1:j + 2] == char:
                    j += 2
                    continue
                return j + 1
            j += 1
        return j
    if char == "$":
        tag = _DOLLAR_TAG.match(script, i)
        if tag and not (i > 0 and (script[i - 1].isalnum() or script[i - 1] == "_")):
            end = script.find(tag.group(0), tag.end())
            return len(script) if end < 0 else end + len(tag.group(0))
    return 0


def check_globals_script(script, where):
    """Refuse a globals script that holds any psql meta-command pg_dumpall does not write (\\! runs a shell on
    this host, \\connect goes elsewhere, \\o writes files), or that switches off standard_conforming_strings,
    under which psql would read its quotes differently from this check."""
    for line, text in meta_commands(script):
        if not _ALLOWED_META.match(text):
            raise PostgresError("%s line %d holds the psql meta-command %r, which pg_dumpall never writes: the backup "
                                "was tampered with; nothing was replayed" % (where, line, text[:40]))
    if re.search(r"standard_conforming_strings\s*(=|to)\s*'?off", script, re.I):
        raise PostgresError("%s switches standard_conforming_strings off, which pg_dumpall never does: the backup "
                            "was tampered with; nothing was replayed" % where)
