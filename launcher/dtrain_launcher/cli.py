def main(argv=None):
    raise SystemExit("dtrain-run: not built yet")
