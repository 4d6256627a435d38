/* slcan.c - stub, implementation follows. */
