/* moe-inspect: what an MoE checkpoint or config.json is and costs; tensor and metadata listings. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "arch.h"
#include "ckpt.h"
#include "cli.h"
#include "params.h"

struct opts {
	int json;
	int layers;
	int metadata;
	int tensors;
	int tsv;
	uint64_t ctx;          /* 0: the model's trained context */
	double bandwidth;      /* bytes/s, 0 = not given */
};

static const char usage_text[] =
	"usage: moe-inspect [-hjlmt] [-b GB/s] [-c N] [--bandwidth GB/s] [--ctx N]\n"
	"                   [--json] [--layers] [--metadata] [--tensors] [--tsv]\n"
	"                   [--version] [file ...]\n";

static void usage(FILE *f)
{
	fputs(usage_text, f);
}

/* Everything known about one input once it is described. */
struct report {
	const char *name;
	struct moe_arch arch;
	int have_arch;
	char note[600];              /* why the arch came from a fallback */
	struct moe_params cfg, ten;  /* closed form / from tensors */
	int have_cfg, have_ten;
	const struct moe_params *p;  /* the one reported as primary */
	uint64_t ctx;
};

/* The dtypes of the memory table, in falling size. */
static const enum moe_dtype mem_types[] = {
	MOE_DT_F32, MOE_DT_BF16, MOE_DT_F8_E4M3, MOE_DT_Q8_0, MOE_DT_Q6_K, MOE_DT_Q5_K,
	MOE_DT_Q4_K, MOE_DT_Q4_0, MOE_DT_MXFP4, MOE_DT_Q3_K, MOE_DT_Q2_K
};
#define N_MEM (sizeof mem_types / sizeof mem_types[0])

/* KV cache values are counted as F16. */
#define KV_BYTES 2

static const char *mem_name(enum moe_dtype t)
{
	if (t == MOE_DT_BF16)
		return "BF16/F16";
	if (t == MOE_DT_F8_E4M3)
		return "FP8";
	return moe_dtype_name(t);
}

/* ---- listing (tensors, metadata) ---------------------------------------- */

static void shape_str(const struct moe_tensor *t, char *buf, size_t n)
{
	size_t k = 0;

	k += (size_t)snprintf(buf + k, n - k, "[");
	for (int d = 0; d < t->ndim && k < n; d++)
		k += (size_t)snprintf(buf + k, n - k, "%s%" PRIu64, d ? ", " : "",
			t->shape[d]);
	if (k < n)
		snprintf(buf + k, n - k, "]");
}

static void totals(const struct moe_ckpt *ck, uint64_t *params, uint64_t *bytes)
{
	*params = *bytes = 0;
	for (size_t i = 0; i < moe_ckpt_ntensors(ck); i++) {
		const struct moe_tensor *t = moe_ckpt_tensor(ck, i);
		*params += moe_tensor_numel(t);
		*bytes += t->nbytes;
	}
}

static void print_tensors(const struct moe_ckpt *ck)
{
	size_t wname = 4, wshape = 5;
	char shape[256];

	for (size_t i = 0; i < moe_ckpt_ntensors(ck); i++) {
		const struct moe_tensor *t = moe_ckpt_tensor(ck, i);
		shape_str(t, shape, sizeof shape);
		if (strlen(t->name) > wname)
			wname = strlen(t->name);
		if (strlen(shape) > wshape)
			wshape = strlen(shape);
	}
	printf("%-*s  %-7s  %-*s  %14s  %4s  %s\n", (int)wname, "name", "dtype",
		(int)wshape, "shape", "bytes", "file", "offset");
	for (size_t i = 0; i < moe_ckpt_ntensors(ck); i++) {
		const struct moe_tensor *t = moe_ckpt_tensor(ck, i);
		shape_str(t, shape, sizeof shape);
		printf("%-*s  %-7s  %-*s  %14" PRIu64 "  %4u  %" PRIu64 "\n",
			(int)wname, t->name, moe_dtype_name(t->dtype), (int)wshape,
			shape, t->nbytes, t->file, t->offset);
	}
}

/* One metadata value on one line; long arrays are cut. */
static void print_value(const struct moe_value *v)
{
	json_t *j = moe_value_to_json(v, 8);
	char *s = j ? json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;

	if (v->type == MOE_V_ARR)
		printf("%s[%" PRIu64 "]\t", moe_vtype_name(v->v.arr.type), v->v.arr.n);
	else
		printf("%s\t", moe_vtype_name(v->type));
	printf("%s\n", s ? s : "?");
	free(s);
	json_decref(j);
}

static void print_metadata(const struct moe_ckpt *ck)
{
	static const char *side[] = { "config", "generation_config", "tokenizer_config" };
	const struct moe_meta *m = moe_ckpt_meta(ck);

	for (size_t i = 0; i < moe_meta_count(m); i++) {
		printf("%s\t", moe_meta_key(m, i));
		print_value(moe_meta_at(m, i));
	}
	for (int i = 0; i < 3; i++) {
		json_t *j = moe_ckpt_json(ck, side[i]);
		char *s = j ? json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
		if (s)
			printf("# %s.json\n%s\n", side[i], s);
		free(s);
	}
}

static void print_summary(const char *path, const struct moe_ckpt *ck)
{
	uint64_t params, bytes;

	totals(ck, &params, &bytes);
	printf("%s: %s, %zu file%s, %zu tensors, %" PRIu64 " parameters, %" PRIu64
		" bytes of tensor data\n", path, moe_format_name(moe_ckpt_format(ck)),
		moe_ckpt_nfiles(ck), moe_ckpt_nfiles(ck) == 1 ? "" : "s",
		moe_ckpt_ntensors(ck), params, bytes);
}

static json_t *tensors_json(const struct moe_ckpt *ck)
{
	json_t *a = json_array();

	for (size_t i = 0; i < moe_ckpt_ntensors(ck); i++) {
		const struct moe_tensor *t = moe_ckpt_tensor(ck, i);
		json_t *shape = json_array();
		for (int d = 0; d < t->ndim; d++)
			json_array_append_new(shape, json_integer((json_int_t)t->shape[d]));
		json_array_append_new(a, json_pack("{s:s, s:s, s:o, s:I, s:i, s:I}",
			"name", t->name, "dtype", moe_dtype_name(t->dtype),
			"shape", shape, "bytes", (json_int_t)t->nbytes,
			"file", (int)t->file, "offset", (json_int_t)t->offset));
	}
	return a;
}

static json_t *source_json(unsigned src)
{
	static const struct { unsigned bit; const char *name; } s[] = {
		{ MOE_SRC_DIR, "directory" }, { MOE_SRC_INDEX, "index" },
		{ MOE_SRC_ARCHIVE, "archive" }, { MOE_SRC_STREAM, "stream" } };
	json_t *a = json_array();

	for (size_t i = 0; i < sizeof s / sizeof s[0]; i++)
		if (src & s[i].bit)
			json_array_append_new(a, json_string(s[i].name));
	return a;
}

static json_t *metadata_json(const struct moe_ckpt *ck)
{
	const struct moe_meta *m = moe_ckpt_meta(ck);
	json_t *o = json_object();

	for (size_t i = 0; i < moe_meta_count(m); i++)
		json_object_set_new(o, moe_meta_key(m, i),
			moe_value_to_json(moe_meta_at(m, i), 0));
	return o;
}

/* ---- description -------------------------------------------------------- */

/* Describes ck: config.json, else GGUF metadata, else tensor shapes; a
 * failing config falls back to the tensors when there are any. Returns 0,
 * 1 when tensors are listed but do not describe a model (said on stderr,
 * not a failure: the listing still stands), -1 on failure. */
static int describe(struct report *r, const struct moe_ckpt *ck, const struct opts *o)
{
	size_t n = moe_ckpt_ntensors(ck);
	const struct moe_tensor *t = n ? moe_ckpt_tensor(ck, 0) : NULL;
	struct moe_error err = { 0 };

	moe_arch_init(&r->arch);
	moe_params_init(&r->cfg);
	moe_params_init(&r->ten);
	if (moe_arch_from_ckpt(&r->arch, ck) != 0) {
		if (n == 0) {
			moe_cli_error(r->name, "%s", moe_arch_errstr(&r->arch));
			return -1;
		}
		snprintf(r->note, sizeof r->note, "%s; described from tensor shapes",
			moe_arch_errstr(&r->arch));
		if (moe_arch_from_tensors(&r->arch, t, n) != 0) {
			moe_cli_error(r->name, "not described: %s", moe_arch_errstr(&r->arch));
			return 1;
		}
	}
	r->have_arch = 1;
	if (moe_params_from_arch(&r->cfg, &r->arch, &err) != 0 ||
		(n && moe_params_from_tensors(&r->ten, &r->arch, t, n, &err) != 0)) {
		moe_cli_error(r->name, "%s", moe_error_str(&err));
		return -1;
	}
	r->have_cfg = strcmp(r->arch.source, "tensors") != 0;
	r->have_ten = n > 0;
	r->p = r->have_ten ? &r->ten : &r->cfg;
	r->ctx = o->ctx ? o->ctx : r->arch.ctx ? r->arch.ctx : 4096;
	return 0;
}

static void report_release(struct report *r)
{
	moe_params_release(&r->cfg);
	moe_params_release(&r->ten);
	moe_arch_release(&r->arch);
}

static json_t *differences_of(const struct report *r)
{
	return r->have_cfg && r->have_ten ? moe_params_differences(&r->cfg, &r->ten) : json_array();
}

/* ---- human report ------------------------------------------------------- */

/* "46.70B", "131.1M", "12.3K", "512" */
static const char *human_n(uint64_t n, char *buf, size_t len)
{
	if (n >= 1000000000ull)
		snprintf(buf, len, "%.2fB", n / 1e9);
	else if (n >= 1000000ull)
		snprintf(buf, len, "%.1fM", n / 1e6);
	else if (n >= 10000ull)
		snprintf(buf, len, "%.1fK", n / 1e3);
	else
		snprintf(buf, len, "%" PRIu64, n);
	return buf;
}

/* Bytes in SI units, as bandwidths are quoted. */
static const char *human_b(uint64_t n, char *buf, size_t len)
{
	if (n >= 1000000000ull)
		snprintf(buf, len, "%.1f GB", n / 1e9);
	else if (n >= 1000000ull)
		snprintf(buf, len, "%.1f MB", n / 1e6);
	else if (n >= 1000ull)
		snprintf(buf, len, "%.1f kB", n / 1e3);
	else
		snprintf(buf, len, "%" PRIu64 " B", n);
	return buf;
}

static void print_arch(const struct report *r)
{
	const struct moe_arch *a = &r->arch;
	const struct moe_layer *at = moe_arch_first_layer(a, 0), *m = moe_arch_first_layer(a, 1);
	char b1[32];

	printf("  model        %s (model_type %s, described from %s)\n", a->family,
		a->model_type, a->source);
	if (r->note[0])
		printf("  note         %s\n", r->note);
	printf("  layers       %u: %u MoE, %u dense", a->n_layers, moe_arch_count(a, MOE_COUNT_MOE),
		moe_arch_count(a, MOE_COUNT_DENSE));
	if (moe_arch_count(a, MOE_COUNT_SSM))
		printf(", %u linear-attention/state-space", moe_arch_count(a, MOE_COUNT_SSM));
	if (a->enc_dec)
		printf(" (%u encoder + %u decoder)", a->n_enc_layers, a->n_layers - a->n_enc_layers);
	printf("; d_model %u, vocab %" PRIu64 ", %s head\n", a->d_model, a->vocab,
		a->tied ? "tied" : "separate");
	if (at && at->attn == MOE_ATTN_MLA)
		printf("  attention    MLA, %u heads, q rank %u, kv rank %u, rope dim %u\n",
			at->n_head, at->q_lora_rank, at->kv_lora_rank, at->qk_rope_dim);
	else if (at) {
		printf("  attention    %s, %u heads / %u kv heads, head dim %u",
			at->attn == MOE_ATTN_MHA ? "MHA" : "GQA", at->n_head, at->n_head_kv,
			at->head_dim);
		if (moe_arch_count(a, MOE_COUNT_WINDOWED))
			printf("; %u layers windowed (%u tokens)", moe_arch_count(a, MOE_COUNT_WINDOWED),
				a->layers[0].window ? a->layers[0].window : a->layers[1 % a->n_layers].window);
		printf("\n");
	}
	if (m) {
		printf("  experts      %u routed, top-%u, expert FFN %u", m->n_expert, m->top_k,
			m->d_expert);
		if (m->d_shared)
			printf("; %u shared (FFN %u%s)", m->n_shared, m->d_shared,
				m->shared_gate ? ", gated" : "");
		printf("\n  routing      %s%s", a->gating == MOE_GATE_SIGMOID ? "sigmoid" : "softmax",
			a->norm_topk ? ", top-k renormalised" : "");
		if (a->routed_scale != 1.0)
			printf(", scaled x%g", a->routed_scale);
		if (a->n_group)
			printf(", %u groups, top-%u groups", a->n_group, a->topk_group);
		if (m->score_bias)
			printf(", score-correction bias");
		printf("\n");
	}
	if (a->n_mtp)
		printf("  extra        %u multi-token-prediction layer%s\n", a->n_mtp,
			a->n_mtp == 1 ? "" : "s");
	if (a->vision_params)
		printf("  extra        vision tower, %s parameters\n",
			human_n(a->vision_params, b1, sizeof b1));
	if (a->unknown[0])
		printf("  unknown      %s\n", a->unknown);
}

static void print_params(const struct report *r, const struct opts *o)
{
	const struct moe_params *p = r->p;
	char b1[32], b2[32], b3[32], b4[32];

	printf("  parameters   %s total, ", human_n(p->total, b1, sizeof b1));
	if (p->active_known)
		printf("%s active per token (%.1f%%), incl. embedding and head\n",
			human_n(p->active, b2, sizeof b2), 100 * moe_params_sparsity(p));
	else
		printf("active unknown (top-k not known)\n");
	printf("               %s / %s without input embedding; %s / %s non-embedding\n",
		human_n(p->total_no_embed, b1, sizeof b1), human_n(p->active_no_embed, b2, sizeof b2),
		human_n(p->total_nonembed, b3, sizeof b3), human_n(p->active_nonembed, b4, sizeof b4));
	if (p->total_all != p->total)
		printf("               %s with %s\n", human_n(p->total_all, b1, sizeof b1),
			!p->comp[MOE_COMP_VISION] ? "the MTP layers" : !p->comp[MOE_COMP_MTP] ?
			"the vision tower" : "the MTP layers and the vision tower");
	if (r->have_cfg && r->have_ten)
		printf("  counted      from the tensors; the %s gives %s / %s\n",
			strcmp(r->arch.source, "gguf") == 0 ? "GGUF metadata" : "config.json",
			human_n(r->cfg.total, b1, sizeof b1), human_n(r->cfg.active, b2, sizeof b2));
	printf("  %-16s %10s %10s\n", "component", "params", "active");
	for (int k = 0; k < MOE_COMP_COUNT; k++)
		if (p->comp[k])
			printf("    %-14s %10s %10s\n", moe_comp_name(k),
				human_n(p->comp[k], b1, sizeof b1),
				human_n(p->comp_active[k], b2, sizeof b2));
	{
		json_t *d = differences_of(r);
		size_t i;
		json_t *v;

		json_array_foreach(d, i, v)
			printf("  difference   %s\n", json_string_value(v));
		json_decref(d);
	}
	printf("  kv cache     %s per token (F16), %s at %" PRIu64 " tokens\n",
		human_b(moe_kv_bytes_per_token(&r->arch, KV_BYTES), b1, sizeof b1),
		human_b(moe_kv_bytes(&r->arch, r->ctx, KV_BYTES), b2, sizeof b2), r->ctx);
	printf("  %-10s %12s %12s %12s%s\n", "weights", "all experts", "active",
		"read/token", o->bandwidth ? "     tokens/s" : "");
	for (size_t i = 0; i < N_MEM; i++) {
		uint64_t rd = moe_params_bytes(p, mem_types[i], 2);

		printf("    %-8s %12s %12s %12s", mem_name(mem_types[i]),
			human_b(moe_params_bytes(p, mem_types[i], 0), b1, sizeof b1),
			human_b(moe_params_bytes(p, mem_types[i], 1), b2, sizeof b2),
			human_b(rd, b3, sizeof b3));
		if (o->bandwidth)
			printf(" %12.1f", moe_decode_bound(o->bandwidth, rd));
		printf("\n");
	}
}

/* One line per block: its kinds and counts. */
static void print_layers(const struct report *r)
{
	const struct moe_params *p = r->p;
	char b1[32], b2[32];

	printf("  %-7s %-9s %-6s %10s %10s\n", "layer", "attention", "ffn", "params", "active");
	for (uint32_t i = 0; i < p->n_layers; i++) {
		const struct moe_layer *L = i < r->arch.n_layers ? &r->arch.layers[i] : NULL;

		printf("    %-5u %-9s %-6s %10s %10s\n", i,
			L ? moe_attn_kind_name(L->attn) : "none",
			!L || L->ffn == MOE_FFN_NONE ? "none" : L->ffn == MOE_FFN_MOE ? "moe" : "dense",
			human_n(p->layers[i].total, b1, sizeof b1),
			human_n(p->layers[i].active, b2, sizeof b2));
	}
}

/* ---- JSON report -------------------------------------------------------- */

static json_t *u64(uint64_t v)
{
	return json_integer((json_int_t)v);
}

static json_t *memory_json(const struct report *r, const struct opts *o)
{
	json_t *a = json_array();

	for (size_t i = 0; i < N_MEM; i++) {
		uint64_t rd = moe_params_bytes(r->p, mem_types[i], 2);
		json_t *x = json_pack("{s:s,s:o,s:o,s:o}", "dtype", mem_name(mem_types[i]),
			"total_bytes", u64(moe_params_bytes(r->p, mem_types[i], 0)),
			"active_bytes", u64(moe_params_bytes(r->p, mem_types[i], 1)),
			"read_bytes_per_token", u64(rd));

		if (o->bandwidth)
			json_object_set_new(x, "tokens_per_s",
				json_real(moe_decode_bound(o->bandwidth, rd)));
		json_array_append_new(a, x);
	}
	return a;
}

static void report_json(json_t *doc, const struct report *r, const struct opts *o)
{
	json_object_set_new(doc, "architecture", moe_arch_to_json(&r->arch));
	if (r->note[0])
		json_object_set_new(doc, "architecture_note", json_string(r->note));
	json_object_set_new(doc, "params_primary", json_string(r->have_ten ? "tensors" : "config"));
	if (r->have_cfg)
		json_object_set_new(doc, "params_config", moe_params_to_json(&r->cfg, &r->arch));
	if (r->have_ten)
		json_object_set_new(doc, "params_tensors", moe_params_to_json(&r->ten, &r->arch));
	json_object_set_new(doc, "params_notes", differences_of(r));
	json_object_set_new(doc, "kv_cache", json_pack("{s:i,s:o,s:o,s:o}",
		"element_bytes", KV_BYTES,
		"bytes_per_token", u64(moe_kv_bytes_per_token(&r->arch, KV_BYTES)),
		"context", u64(r->ctx),
		"bytes", u64(moe_kv_bytes(&r->arch, r->ctx, KV_BYTES))));
	json_object_set_new(doc, "memory", memory_json(r, o));
	if (o->bandwidth)
		json_object_set_new(doc, "bandwidth_gbps", json_real(o->bandwidth / 1e9));
}

static int print_json(const char *path, const struct moe_ckpt *ck, const struct opts *o,
	const struct report *r)
{
	static const char *side[] = { "config", "generation_config", "tokenizer_config" };
	uint64_t params, bytes;
	json_t *files = json_array(), *doc;
	int rc;

	totals(ck, &params, &bytes);
	for (size_t i = 0; i < moe_ckpt_nfiles(ck); i++)
		json_array_append_new(files, json_string(moe_ckpt_file_name(ck, i)));
	doc = json_pack("{s:s, s:s, s:o, s:o, s:I, s:I, s:I, s:I}",
		"input", path, "format", moe_format_name(moe_ckpt_format(ck)),
		"source", source_json(moe_ckpt_source(ck)), "files", files,
		"bytes_read", (json_int_t)moe_ckpt_bytes_read(ck),
		"tensor_count", (json_int_t)moe_ckpt_ntensors(ck),
		"parameters", (json_int_t)params, "tensor_bytes", (json_int_t)bytes);
	if (doc == NULL)
		return -1;
	if (r)
		report_json(doc, r, o);
	if (o->tensors)
		json_object_set_new(doc, "tensors", tensors_json(ck));
	if (o->metadata) {
		json_object_set_new(doc, "metadata", metadata_json(ck));
		for (int i = 0; i < 3; i++) {
			json_t *j = moe_ckpt_json(ck, side[i]);
			if (j)
				json_object_set(doc, side[i], j);
		}
	}
	rc = json_dumpf(doc, stdout, JSON_COMPACT | JSON_PRESERVE_ORDER);
	putchar('\n');
	json_decref(doc);
	return rc;
}

/* ---- TSV and side-by-side ---------------------------------------------- */

static const char tsv_header[] =
	"# input\tmodel_type\ttotal\tactive\ttotal_nonembed\tactive_nonembed\t"
	"active_no_embed\ttotal_all\tlayers\tmoe_layers\texperts\ttop_k\td_model\t"
	"kv_bytes_per_token\tbf16_bytes\tq4_k_bytes\tq4_k_read_bytes_per_token\n";

static void print_tsv(const struct report *r)
{
	const struct moe_params *p = r->p;

	printf("%s\t%s\t%" PRIu64 "\t", r->name, r->arch.model_type, p->total);
	if (p->active_known)
		printf("%" PRIu64 "\t%" PRIu64 "\t%" PRIu64 "\t%" PRIu64 "\t%" PRIu64, p->active,
			p->total_nonembed, p->active_nonembed, p->active_no_embed, p->total_all);
	else
		printf("-\t%" PRIu64 "\t-\t-\t%" PRIu64, p->total_nonembed, p->total_all);
	printf("\t%u\t%u\t%u\t%u\t%u\t%" PRIu64 "\t%" PRIu64 "\t%" PRIu64 "\t%" PRIu64 "\n",
		r->arch.n_layers, moe_arch_count(&r->arch, MOE_COUNT_MOE), p->n_expert, p->top_k,
		r->arch.d_model, moe_kv_bytes_per_token(&r->arch, KV_BYTES),
		moe_params_bytes(p, MOE_DT_BF16, 0), moe_params_bytes(p, MOE_DT_Q4_K, 0),
		moe_params_bytes(p, MOE_DT_Q4_K, 2));
}

/* One row of the comparison printed after several human reports. */
struct row {
	char *name, *model;
	uint64_t total, active, bf16, q4k, kv;
	uint32_t experts, top_k;
	int known;
};

static void print_rows(const struct row *rows, size_t n)
{
	char b[7][32];
	int w = 5, wm = 5;

	for (size_t i = 0; i < n; i++) {
		if ((int)strlen(rows[i].name) > w)
			w = (int)strlen(rows[i].name);
		if ((int)strlen(rows[i].model) > wm)
			wm = (int)strlen(rows[i].model);
	}
	printf("\n%-*s  %-*s %9s %9s %6s %8s %10s %10s %10s\n", w, "input", wm, "model",
		"total", "active", "ratio", "experts", "BF16", "Q4_K", "KV/token");
	for (size_t i = 0; i < n; i++) {
		char ex[24];

		snprintf(ex, sizeof ex, "%u/%u", rows[i].top_k, rows[i].experts);
		printf("%-*s  %-*s %9s %9s %5.1f%% %8s %10s %10s %10s\n", w, rows[i].name, wm,
			rows[i].model, human_n(rows[i].total, b[0], 32),
			rows[i].known ? human_n(rows[i].active, b[1], 32) : "-",
			rows[i].known && rows[i].total ? 100.0 * rows[i].active / rows[i].total : 0.0,
			ex, human_b(rows[i].bf16, b[2], 32), human_b(rows[i].q4k, b[3], 32),
			human_b(rows[i].kv, b[4], 32));
	}
}

/* ---- one input ---------------------------------------------------------- */

static int inspect(const char *path, const struct opts *o, struct row *row)
{
	struct moe_ckpt *ck;
	struct report r = { 0 };
	const char *name = strcmp(path, "-") == 0 ? "<stdin>" : path;
	int rc, listing = o->tensors || o->metadata;

	if (moe_ckpt_new(&ck) != 0) {
		moe_cli_error(name, "out of memory");
		return -1;
	}
	if ((rc = moe_ckpt_open(ck, path)) != 0) {
		moe_cli_error(name, "%s", moe_ckpt_errstr(ck));
		moe_ckpt_free(ck);
		return -1;
	}
	r.name = name;
	if (!listing && (rc = describe(&r, ck, o)) < 0) {
		report_release(&r);
		moe_ckpt_free(ck);
		return -1;
	}
	rc = 0;
	if (o->tsv) {
		if (r.have_arch)
			print_tsv(&r);
	} else if (o->json)
		rc = print_json(name, ck, o, r.have_arch ? &r : NULL);
	else {
		print_summary(name, ck);
		if (r.have_arch) {
			print_arch(&r);
			print_params(&r, o);
			if (o->layers)
				print_layers(&r);
		}
		if (o->metadata)
			print_metadata(ck);
		if (o->tensors)
			print_tensors(ck);
	}
	if (row && r.have_arch) {
		row->name = strdup(name);
		row->model = strdup(r.arch.model_type);
		row->total = r.p->total;
		row->active = r.p->active;
		row->known = r.p->active_known;
		row->experts = r.p->n_expert;
		row->top_k = r.p->top_k;
		row->bf16 = moe_params_bytes(r.p, MOE_DT_BF16, 0);
		row->q4k = moe_params_bytes(r.p, MOE_DT_Q4_K, 0);
		row->kv = moe_kv_bytes_per_token(&r.arch, KV_BYTES);
	}
	report_release(&r);
	moe_ckpt_free(ck);
	return rc;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "bandwidth", required_argument, NULL, 'b' },
		{ "ctx", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ "json", no_argument, NULL, 'j' },
		{ "layers", no_argument, NULL, 'l' },
		{ "metadata", no_argument, NULL, 'm' },
		{ "tensors", no_argument, NULL, 't' },
		{ "tsv", no_argument, NULL, 'T' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 }
	};
	struct opts o = { 0 };
	struct row *rows = NULL;
	size_t nrows = 0;
	int c, status = MOE_EXIT_OK, compare;

	moe_cli_init(argv[0]);
	argv[0] = (char *)moe_cli_progname();  /* getopt's messages use it */
	while ((c = getopt_long(argc, argv, "b:c:hjlmt", longopts, NULL)) != -1) {
		switch (c) {
		case 'b':
			if (moe_cli_parse_double("--bandwidth", optarg, 1e-6, 1e9, &o.bandwidth) != 0)
				return MOE_EXIT_USAGE;
			o.bandwidth *= 1e9;
			break;
		case 'c':
			if (moe_cli_parse_u64("--ctx", optarg, 1, UINT64_C(1) << 40, &o.ctx) != 0)
				return MOE_EXIT_USAGE;
			break;
		case 'h': usage(stdout); return moe_cli_close_stdout(MOE_EXIT_OK);
		case 'j': o.json = 1; break;
		case 'l': o.layers = 1; break;
		case 'm': o.metadata = 1; break;
		case 't': o.tensors = 1; break;
		case 'T': o.tsv = 1; break;
		case 'V': moe_cli_version(); return moe_cli_close_stdout(MOE_EXIT_OK);
		default: usage(stderr); return MOE_EXIT_USAGE;
		}
	}
	argc -= optind;
	argv += optind;
	if (o.tsv && (o.json || o.tensors || o.metadata)) {
		moe_cli_error(NULL, "--tsv cannot be combined with --json, --tensors or --metadata");
		usage(stderr);
		return MOE_EXIT_USAGE;
	}
	if (argc == 0 && isatty(STDIN_FILENO)) {
		usage(stderr);
		return MOE_EXIT_USAGE;
	}
	if (o.tsv)
		fputs(tsv_header, stdout);
	compare = argc > 1 && !o.json && !o.tsv && !o.tensors && !o.metadata;
	if (compare && (rows = calloc((size_t)argc, sizeof *rows)) == NULL) {
		moe_cli_error(NULL, "out of memory");
		return MOE_EXIT_FAIL;
	}
	if (argc == 0 && inspect("-", &o, NULL) != 0)
		status = MOE_EXIT_FAIL;
	for (int i = 0; i < argc; i++) {
		if (compare && i > 0)
			putchar('\n');
		if (inspect(argv[i], &o, compare ? &rows[nrows] : NULL) != 0)
			status = MOE_EXIT_FAIL;
		else if (compare && rows[nrows].name)
			nrows++;
	}
	if (compare && nrows > 1)
		print_rows(rows, nrows);
	for (size_t i = 0; i < nrows; i++) {
		free(rows[i].name);
		free(rows[i].model);
	}
	free(rows);
	return moe_cli_close_stdout(status);
}
