/* can_transport.c - stub, implementation follows. */
