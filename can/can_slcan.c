/* can_slcan.c - stub, implementation follows. */
