#!/usr/bin/env python3
"""A stand-in tool for test_chat.py: reads the call JSON herd writes on stdin, answers a fixed time."""
import json
import sys

call = json.load(sys.stdin)
print(json.dumps({"time": "12:00", "tz": call["arguments"]["tz"], "got": call["name"]}))
