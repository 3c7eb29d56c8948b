/* moe-inspect: what is in a checkpoint or config.json: tensors, metadata, totals. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "ckpt.h"
#include "cli.h"

struct opts {
	int json;
	int metadata;
	int tensors;
};

static const char usage_text[] =
	"usage: moe-inspect [-hjmt] [--json] [--metadata] [--tensors] [--version]\n"
	"                   [file ...]\n";

static void usage(FILE *f)
{
	fputs(usage_text, f);
}

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

static int print_json(const char *path, const struct moe_ckpt *ck, const struct opts *o)
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

static int inspect(const char *path, const struct opts *o)
{
	struct moe_ckpt *ck;
	const char *name = strcmp(path, "-") == 0 ? "<stdin>" : path;
	int rc;

	if (moe_ckpt_new(&ck) != 0) {
		moe_cli_error(name, "out of memory");
		return -1;
	}
	if ((rc = moe_ckpt_open(ck, path)) != 0) {
		moe_cli_error(name, "%s", moe_ckpt_errstr(ck));
		moe_ckpt_free(ck);
		return -1;
	}
	if (o->json)
		rc = print_json(name, ck, o);
	else {
		print_summary(name, ck);
		if (o->metadata)
			print_metadata(ck);
		if (o->tensors)
			print_tensors(ck);
	}
	moe_ckpt_free(ck);
	return rc;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "json", no_argument, NULL, 'j' },
		{ "metadata", no_argument, NULL, 'm' },
		{ "tensors", no_argument, NULL, 't' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 }
	};
	struct opts o = { 0 };
	int c, status = MOE_EXIT_OK;

	moe_cli_init(argv[0]);
	argv[0] = (char *)moe_cli_progname();  /* getopt's messages use it */
	while ((c = getopt_long(argc, argv, "hjmt", longopts, NULL)) != -1) {
		switch (c) {
		case 'h': usage(stdout); return moe_cli_close_stdout(MOE_EXIT_OK);
		case 'j': o.json = 1; break;
		case 'm': o.metadata = 1; break;
		case 't': o.tensors = 1; break;
		case 'V': moe_cli_version(); return moe_cli_close_stdout(MOE_EXIT_OK);
		default: usage(stderr); return MOE_EXIT_USAGE;
		}
	}
	argc -= optind;
	argv += optind;
	if (argc == 0 && isatty(STDIN_FILENO)) {
		usage(stderr);
		return MOE_EXIT_USAGE;
	}
	if (argc == 0 && inspect("-", &o) != 0)
		status = MOE_EXIT_FAIL;
	for (int i = 0; i < argc; i++)
		if (inspect(argv[i], &o) != 0)
			status = MOE_EXIT_FAIL;
	return moe_cli_close_stdout(status);
}
