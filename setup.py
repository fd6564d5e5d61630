"""Declares the optional C accelerators; all other metadata is in pyproject.toml.

``optional=True``: where an extension cannot be compiled (no C compiler, no Python headers), the
install still succeeds; ssehub.wire then uses its pure-Python implementation, and the server
reads every request through its general path.
"""

from setuptools import Extension, setup

EVENT_BYTES = "src/ssehub/_event_bytes.h"  # the event writer both extensions include

setup(
    ext_modules=[
        Extension("ssehub._wire_c", ["src/ssehub/_wire_c.c"], depends=[EVENT_BYTES], optional=True),
        Extension(
            "ssehub.server._publish_c",
            ["src/ssehub/server/_publish_c.c"],
            depends=[EVENT_BYTES],
            optional=True,
        ),
    ]
)
