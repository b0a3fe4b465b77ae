from .iir import *  # noqa: F401,F403
