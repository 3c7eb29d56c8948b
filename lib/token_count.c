/* Open-addressing hash tables for (expert, token) counts and token texts. */
#include "token_count.h"

#include <stdlib.h>
#include <string.h>

#include "error.h"

struct slot {
	uint64_t key;     /* (token << 16 | expert) + 1; 0 = empty */
	uint64_t count;
};

struct text_slot {
	uint64_t key;     /* token + 1; 0 = empty */
	char *text;
};

struct moe_token_count {
	struct slot *s;
	size_t cap, used;          /* cap a power of two */
	struct text_slot *t;
	size_t tcap, tused;
};

int moe_token_count_new(struct moe_token_count **out)
{
	*out = calloc(1, sizeof **out);
	return *out ? 0 : MOE_ENOMEM;
}

void moe_token_count_free(struct moe_token_count *c)
{
	if (c == NULL)
		return;
	for (size_t i = 0; i < c->tcap; i++)
		free(c->t[i].text);
	free(c->t);
	free(c->s);
	free(c);
}

static size_t hash(uint64_t k, size_t cap)
{
	k ^= k >> 33;
	k *= 0xff51afd7ed558ccdull;
	k ^= k >> 33;
	return (size_t)k & (cap - 1);
}

static int grow(struct moe_token_count *c)
{
	size_t cap = c->cap ? c->cap * 2 : 1024;
	struct slot *ns = calloc(cap, sizeof *ns);

	if (ns == NULL)
		return MOE_ENOMEM;
	for (size_t i = 0; i < c->cap; i++)
		if (c->s[i].key) {
			size_t j = hash(c->s[i].key, cap);
			while (ns[j].key)
				j = (j + 1) & (cap - 1);
			ns[j] = c->s[i];
		}
	free(c->s);
	c->s = ns;
	c->cap = cap;
	return 0;
}

int moe_token_count_add(struct moe_token_count *c, uint32_t expert, uint32_t token, uint64_t n)
{
	uint64_t key = ((uint64_t)token << 16 | (expert & 0xffff)) + 1;
	size_t j;

	if ((c->used + 1) * 2 > c->cap && grow(c) != 0)
		return MOE_ENOMEM;
	for (j = hash(key, c->cap); c->s[j].key && c->s[j].key != key; j = (j + 1) & (c->cap - 1))
		;
	if (c->s[j].key == 0) {
		c->s[j].key = key;
		c->used++;
	}
	c->s[j].count += n;
	return 0;
}

static int grow_text(struct moe_token_count *c)
{
	size_t cap = c->tcap ? c->tcap * 2 : 256;
	struct text_slot *nt = calloc(cap, sizeof *nt);

	if (nt == NULL)
		return MOE_ENOMEM;
	for (size_t i = 0; i < c->tcap; i++)
		if (c->t[i].key) {
			size_t j = hash(c->t[i].key, cap);
			while (nt[j].key)
				j = (j + 1) & (cap - 1);
			nt[j] = c->t[i];
		}
	free(c->t);
	c->t = nt;
	c->tcap = cap;
	return 0;
}

static struct text_slot *find_text(const struct moe_token_count *c, uint32_t token)
{
	uint64_t key = (uint64_t)token + 1;

	if (c->tcap == 0)
		return NULL;
	for (size_t j = hash(key, c->tcap); c->t[j].key; j = (j + 1) & (c->tcap - 1))
		if (c->t[j].key == key)
			return &c->t[j];
	return NULL;
}

int moe_token_count_set_text(struct moe_token_count *c, uint32_t token, const char *text)
{
	uint64_t key = (uint64_t)token + 1;
	size_t j;

	if (find_text(c, token))
		return 0;
	if ((c->tused + 1) * 2 > c->tcap && grow_text(c) != 0)
		return MOE_ENOMEM;
	for (j = hash(key, c->tcap); c->t[j].key; j = (j + 1) & (c->tcap - 1))
		;
	if ((c->t[j].text = strdup(text)) == NULL)
		return MOE_ENOMEM;
	c->t[j].key = key;
	c->tused++;
	return 0;
}

const char *moe_token_count_text(const struct moe_token_count *c, uint32_t token)
{
	const struct text_slot *t = find_text(c, token);

	return t ? t->text : NULL;
}

int moe_token_count_merge(struct moe_token_count *a, const struct moe_token_count *b)
{
	for (size_t i = 0; i < b->cap; i++)
		if (b->s[i].key) {
			uint64_t k = b->s[i].key - 1;
			if (moe_token_count_add(a, (uint32_t)(k & 0xffff), (uint32_t)(k >> 16), b->s[i].count) != 0)
				return MOE_ENOMEM;
		}
	for (size_t i = 0; i < b->tcap; i++)
		if (b->t[i].key && moe_token_count_set_text(a, (uint32_t)(b->t[i].key - 1), b->t[i].text) != 0)
			return MOE_ENOMEM;
	return 0;
}

static int cmp_entry(const void *x, const void *y)
{
	const struct moe_token_entry *a = x, *b = y;

	if (a->expert != b->expert)
		return a->expert < b->expert ? -1 : 1;
	if (a->count != b->count)
		return a->count > b->count ? -1 : 1;
	return a->token < b->token ? -1 : a->token > b->token;
}

int moe_token_count_entries(const struct moe_token_count *c, uint32_t per_expert,
	struct moe_token_entry **out, size_t *n)
{
	struct moe_token_entry *e = malloc((c->used ? c->used : 1) * sizeof *e);
	size_t m = 0, k = 0;

	*out = e;
	*n = 0;
	if (e == NULL)
		return MOE_ENOMEM;
	for (size_t i = 0; i < c->cap; i++)
		if (c->s[i].key) {
			uint64_t key = c->s[i].key - 1;
			e[m++] = (struct moe_token_entry){ (uint32_t)(key & 0xffff), (uint32_t)(key >> 16),
				c->s[i].count };
		}
	qsort(e, m, sizeof *e, cmp_entry);
	for (size_t i = 0, run = 0; i < m; i++) {
		run = i > 0 && e[i].expert == e[i - 1].expert ? run + 1 : 0;
		if (per_expert == 0 || run < per_expert)
			e[k++] = e[i];
	}
	*n = k;
	return 0;
}

static int cmp_u32(const void *x, const void *y)
{
	uint32_t a = *(const uint32_t *)x, b = *(const uint32_t *)y;

	return a < b ? -1 : a > b;
}

int moe_token_count_texts(const struct moe_token_count *c, uint32_t **ids,
	const char ***texts, size_t *n)
{
	size_t m = 0;

	*ids = malloc((c->tused ? c->tused : 1) * sizeof **ids);
	*texts = malloc((c->tused ? c->tused : 1) * sizeof **texts);
	*n = 0;
	if (*ids == NULL || *texts == NULL)
		return MOE_ENOMEM;
	for (size_t i = 0; i < c->tcap; i++)
		if (c->t[i].key)
			(*ids)[m++] = (uint32_t)(c->t[i].key - 1);
	qsort(*ids, m, sizeof **ids, cmp_u32);
	for (size_t i = 0; i < m; i++)
		(*texts)[i] = moe_token_count_text(c, (*ids)[i]);
	*n = m;
	return 0;
}
