#!/usr/bin/python3
"""Writes a man page (troff) for a Warren program from its --help pages.

Usage: help2man.py BINARY NAME SECTION VERSION > NAME.SECTION

The program's own help comes first; then every command reachable through
the COMMANDS: sections, each with its help text preformatted. Option lines
already shown for an ancestor (the tunnel flags every subcommand accepts)
are left out of the descendants' pages, so the page stays readable.
No help2man package is needed: --help is generated from the command tables,
so its layout is fixed and simple to read."""
import datetime
import os
import re
import subprocess
import sys


def help_text(binary, path):
    out = subprocess.run([binary, *path, "--help"], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, check=False, text=True)
    return out.stdout


def sections(text):
    """{'NAME': [lines], 'COMMANDS': [...], ...} in order."""
    result, cur = {}, None
    for line in text.splitlines():
        m = re.match(r"^([A-Z][A-Z ]+):$", line)
        if m:
            cur = m.group(1)
            result[cur] = []
        elif cur:
            result[cur].append(line)
    return result


def subcommands(text):
    names = []
    for line in sections(text).get("COMMANDS", []):
        m = re.match(r"^   (\S+)\s{2,}\S", line)
        if m:
            names.append(m.group(1))
    return names


def esc(line):
    line = line.replace("\\", "\\e")
    if line.startswith((".", "'")):
        line = "\\&" + line
    return line


def walk(binary, path, seen_opts, out):
    text = help_text(binary, path)
    if path:
        kept = []
        for line in text.splitlines():
            if line.lstrip().startswith("-") and line in seen_opts:
                continue
            kept.append(line)
        out.append(".SS " + " ".join(path))
        out.append(".nf")
        out.extend(esc(l) for l in kept)
        out.append(".fi")
    seen = seen_opts | {l for l in text.splitlines() if l.lstrip().startswith("-")}
    for sub in subcommands(text):
        walk(binary, path + [sub], seen, out)
    return text


def main():
    binary, name, section, version = sys.argv[1:5]
    date = datetime.datetime.utcfromtimestamp(
        int(os.environ.get("SOURCE_DATE_EPOCH", "0")) or 0).strftime("%Y-%m-%d")
    body = []
    top = walk(binary, [], set(), body)
    sec = sections(top)
    summary = " ".join(l.strip() for l in sec.get("NAME", [])).split(" - ", 1)[-1]
    out = [f'.TH {name.upper()} {section} "{date}" "Warren {version}" "Warren"',
           ".SH NAME", f"{name} \\- {esc(summary)}",
           ".SH SYNOPSIS", ".nf", *[esc(l.strip()) for l in sec.get("USAGE", []) if l.strip()], ".fi"]
    if sec.get("DESCRIPTION"):
        out += [".SH DESCRIPTION", *[esc(l.strip()) for l in sec["DESCRIPTION"] if l.strip()]]
    out += [".SH OPTIONS", ".nf", *[esc(l) for l in sec.get("OPTIONS", []) if l.strip()], ".fi"]
    out += [".SH COMMANDS", *body]
    out += [".SH SEE ALSO", "The README.md in /usr/share/doc/" + name + "."]
    sys.stdout.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
