"""pytest plugin entry point (``pytest11``); the checks suite fills it in."""
