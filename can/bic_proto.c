/*  bic_proto.c - BIC-2200 protocol tables and codec (see bic_proto.h). */
#include "bic_proto.h"

const char *bic_strerror(bic_err_t err)
{
    (void)err;
    return "not implemented";
}
