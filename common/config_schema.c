/*  config_schema: every key of docs/configuration.md (in progress). */
#include "config.h"
