"""Put tests/ on sys.path so the optimizer tests can share its helpers."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
