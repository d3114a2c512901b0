// The whole public API of herd.
#pragma once

#include "herd/chat.h"
#include "herd/distributed.h"
#include "herd/engine.h"
#include "herd/files.h"
#include "herd/memory-plan.h"
#include "herd/model.h"
#include "herd/quantize.h"
#include "herd/retrieval.h"
#include "herd/status.h"
#include "herd/tokenizer.h"
