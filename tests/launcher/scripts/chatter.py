"""usage: chatter.py LINES WIDTH

Each rank writes LINES long lines, every one in several flushed pieces, so that lines of
different ranks would tear apart if the launcher passed output on in chunks rather than lines.
Starts with two lines that look like the head of hydra's error banner but are the script's own.
"""
import os
import sys

lines, width = int(sys.argv[1]), int(sys.argv[2])
rank = os.environ["RANK"]
print("=" * 83)
print("=   a line of the script's own")
for i in range(lines):
    body = f"{rank}:{i}:" + "x" * width
    for k in range(0, len(body), width // 3):
        sys.stdout.write(body[k:k + width // 3])
        sys.stdout.flush()
    sys.stdout.write("\n")
