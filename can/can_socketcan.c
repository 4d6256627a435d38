/* can_socketcan.c - stub, implementation follows. */
