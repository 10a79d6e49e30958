/* Store: accounts, users, passwords and API tokens. */

#include "edge/store_int.h"

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/encoding.h"
#include "lib/err.h"
#include "lib/mem.h"

/* --- accounts ------------------------------------------------------------------ */

int wr_store_account_create(wr_store *s, const char *actor, const char *name, wr_account *out) {
  wr_account a = {0};
  int rv;
  if ((rv = wr__store_check_text(s, "account name", name, WR_STORE_NAME_MAX)) != WR_OK) return rv;
  if ((rv = wr__store_new_hex_id(s, a.id)) != WR_OK) return rv;
  wr__store_copy_str(a.name, sizeof(a.name), name);
  a.created_at = wr__store_now(s);
  if ((rv = wr__store_tx_begin(s)) != WR_OK) return rv;
  rv = wr__store_execf(s, NULL, "create account",
                       "INSERT INTO accounts(id, name, created_at) VALUES (?, ?, ?)", "ssi", a.id,
                       a.name, a.created_at);
  if (rv == WR_OK)
    rv = wr__store_audit_insert(s, actor, a.id, "account.create", "account", a.id,
                                json_pack("{s:s}", "name", name));
  rv = wr__store_tx_end(s, rv);
  if (rv == WR_OK && out) *out = a;
  return rv;
}

static const wr__store_col account_cols[] = {
    WR__COL(WR__COL_TEXT, wr_account, id),
    WR__COL(WR__COL_TEXT, wr_account, name),
    WR__COL(WR__COL_INT64, wr_account, created_at),
};
WR__STORE_ROW_READER(read_account, account_cols)

int wr_store_account_get(wr_store *s, const char *id, wr_account *out) {
  return wr__store_one(
      s, "read account", read_account, out, "no account with id %s", id,
      "SELECT id, name, created_at FROM accounts WHERE id = lower(?)",
      "s", id);
}

int wr_store_account_default(wr_store *s, wr_account *out) {
  wr_db_stmt *st;
  int rv = wr__store_prepf(
      s, &st, "SELECT id, name, created_at FROM accounts ORDER BY created_at, id LIMIT 2", "");
  if (rv != WR_OK) return rv;
  rv = wr__store_step_row(s, st, "read accounts");
  if (rv == WR_ERR_NOTFOUND) {
    wr__store_serr(s, rv, "the store has no account");
  } else if (rv == WR_OK) {
    wr_account first;
    read_account(st, &first);
    rv = wr__store_step_row(s, st, "read accounts");
    if (rv == WR_ERR_NOTFOUND) {
      *out = first;
      rv = WR_OK;
    } else if (rv == WR_OK) {
      char second[WR_STORE_ID_LEN + 1];
      wr__store_col_copy(st, 0, second, sizeof(second));
      rv = wr__store_serr(s, WR_ERR_INVAL,
                          "the store has several accounts (%s, %s, ...); say which one", first.id,
                          second);
    }
  }
  wr_db_finalize(st);
  return rv;
}

int wr_store_account_list(wr_store *s, wr_account **out, size_t *n) {
  int rv;
  *out = wr__store_list(
      s, &rv, n, "read accounts", sizeof(**out), read_account,
      "SELECT id, name, created_at FROM accounts ORDER BY created_at, id",
      "");
  return rv;
}

/* --- users and tokens -------------------------------------------------------------- */

static int check_email(wr_store *s, const char *email) {
  char b[80], canon[WR_STORE_HOST_MAX + 1], msg[WR_STORE_ERRMSG_MAX];
  const char *at;
  int rv;
  if ((rv = wr__store_check_text(s, "email", email, WR_STORE_EMAIL_MAX)) != WR_OK) return rv;
  at = strrchr(email, '@');
  if (!at || at == email || strchr(email, ' '))
    return wr__store_serr(s, WR_ERR_INVAL, "\"%s\" is not an email address (want name@domain)",
                          wr__store_quote(email, b, sizeof(b)));
  if (wr_store_check_dns_name(at + 1, 0, canon, msg, sizeof(msg)) != WR_OK)
    return wr__store_serr(s, WR_ERR_INVAL, "email \"%s\": the domain is not valid: %s",
                          wr__store_quote(email, b, sizeof(b)), msg);
  return WR_OK;
}

static const wr__store_col user_cols[] = {
    WR__COL(WR__COL_TEXT, wr_user, id),
    WR__COL(WR__COL_TEXT, wr_user, account_id),
    WR__COL(WR__COL_TEXT, wr_user, email),
    WR__COL(WR__COL_NOTNULL, wr_user, has_password), /* password_hash */
    WR__COL(WR__COL_INT, wr_user, is_service),
    WR__COL(WR__COL_INT64, wr_user, created_at),
};
WR__STORE_ROW_READER(read_user, user_cols)

#define USER_SELECT "SELECT id, account_id, email, password_hash, is_service, created_at FROM users "

int wr_store_user_get_by_email(wr_store *s, const char *email, wr_user *out) {
  return wr__store_one(
      s, "read user", read_user, out, "no user with email %s", email,
      USER_SELECT "WHERE lower(email) = lower(?)", "s", email);
}

int wr_store_user_create(wr_store *s, const char *actor, const char *account_id, const char *email,
                         const char *password_hash, int is_service, wr_user *out) {
  wr_user u = {0}, old;
  wr_account a;
  int rv;
  if ((rv = check_email(s, email)) != WR_OK) return rv;
  if (password_hash && (rv = wr__store_check_text(s, "password hash", password_hash, 512)) != WR_OK)
    return rv;
  if ((rv = wr__store_new_hex_id(s, u.id)) != WR_OK) return rv;
  wr__store_copy_str(u.email, sizeof(u.email), email);
  u.has_password = password_hash != NULL;
  u.is_service = is_service != 0;
  u.created_at = wr__store_now(s);
  if ((rv = wr__store_tx_begin(s)) != WR_OK) return rv;
  if ((rv = wr_store_account_get(s, account_id, &a)) != WR_OK) goto out;
  wr__store_copy_str(u.account_id, sizeof(u.account_id), a.id);
  rv = wr_store_user_get_by_email(s, email, &old);
  if (rv == WR_OK) {
    rv = wr__store_serr(s, WR_ERR_EXISTS, "a user with email %s already exists", old.email);
    goto out;
  }
  if (rv != WR_ERR_NOTFOUND) goto out;
  rv = wr__store_execf(
      s, NULL, "create user",
      "INSERT INTO users(id, account_id, email, password_hash, is_service, created_at)"
      " VALUES (?, ?, ?, ?, ?, ?)",
      "ssssii", u.id, u.account_id, u.email, password_hash, (int64_t)u.is_service, u.created_at);
  if (rv == WR_OK)
    rv = wr__store_audit_insert(
        s, actor, u.account_id, "user.create", "user", u.id,
        json_pack("{s:s,s:b}", "email", u.email, "is_service", u.is_service));
out:
  rv = wr__store_tx_end(s, rv);
  if (rv == WR_OK && out) *out = u;
  return rv;
}

static int token_hash(wr_store *s, const char *token, uint8_t out[32]) {
  if (gnutls_hash_fast(GNUTLS_DIG_SHA256, token, strlen(token), out) != 0)
    return wr__store_serr(s, WR_ERR_CRYPTO, "SHA-256 is not available");
  return WR_OK;
}

/* The zone |zone_id| a token is limited to, which must be in the user's
 * account |account_id| (|user| names the user in the message); its id to
 * |id_out| when not NULL. WR_OK, WR_ERR_INVAL or wr_store_zone_get's error. */
static int token_zone(wr_store *s, const char *zone_id, const char *account_id, const char *user,
                      char id_out[WR_STORE_ID_LEN + 1]) {
  wr_zone z;
  int rv;
  if ((rv = wr_store_zone_get(s, zone_id, &z)) != WR_OK) return rv;
  if (strcmp(z.account_id, account_id) != 0)
    return wr__store_serr(s, WR_ERR_INVAL, "zone %s belongs to another account than user %s",
                          z.name, user);
  if (id_out) wr__store_copy_str(id_out, WR_STORE_ID_LEN + 1, z.id);
  return WR_OK;
}

/* The user a new token is for: its id and account. */
static const wr__store_col token_user_cols[] = {
    WR__COL(WR__COL_TEXT, wr_api_token, user_id),
    WR__COL(WR__COL_TEXT, wr_api_token, account_id),
};
WR__STORE_ROW_READER(read_token_user, token_user_cols)

int wr_store_token_create(wr_store *s, const char *actor, const char *user_id, const char *zone_id,
                          char token[WR_STORE_TOKEN_LEN + 1], wr_api_token *out) {
  /* base64url's alphabet: safe in headers, URLs and shells. */
  static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  uint8_t rnd[WR_STORE_TOKEN_LEN], hash[32];
  wr_api_token k = {0};
  int rv;
  if ((rv = wr__store_new_hex_id(s, k.id)) != WR_OK) return rv;
  if (wr_random_bytes(rnd, sizeof(rnd)) != WR_OK)
    return wr__store_serr(s, WR_ERR_CRYPTO, "cannot draw random bytes for a token");
  /* 64 symbols: the low 6 bits of each byte are uniform; 240 bits in all. */
  for (size_t i = 0; i < WR_STORE_TOKEN_LEN; i++) token[i] = alphabet[rnd[i] & 63];
  token[WR_STORE_TOKEN_LEN] = '\0';
  memset(rnd, 0, sizeof(rnd));
  if ((rv = token_hash(s, token, hash)) != WR_OK) goto out_notx;
  k.created_at = wr__store_now(s);
  if ((rv = wr__store_tx_begin(s)) != WR_OK) goto out_notx;
  if ((rv = wr__store_one(s, "read user", read_token_user, &k, "no user with id %s", user_id,
                          "SELECT id, account_id FROM users WHERE id = lower(?)", "s",
                          user_id)) != WR_OK)
    goto out;
  if (zone_id && (rv = token_zone(s, zone_id, k.account_id, k.user_id, k.zone_id)) != WR_OK)
    goto out;
  rv = wr__store_execf(
      s, NULL, "create API token",
      "INSERT INTO api_tokens(id, user_id, token_hash, zone_id, created_at) VALUES (?, ?, ?, ?, ?)",
      "ssbsi", k.id, k.user_id, hash, sizeof(hash), zone_id ? k.zone_id : NULL, k.created_at);
  if (rv == WR_OK)
    rv = wr__store_audit_insert(s, actor, k.account_id, "token.create", "token", k.id,
                                json_pack("{s:s,s:s?}", "user_id", k.user_id, "zone_id",
                                          zone_id ? k.zone_id : NULL));
out:
  rv = wr__store_tx_end(s, rv);
out_notx:
  if (rv != WR_OK) memset(token, 0, WR_STORE_TOKEN_LEN + 1);
  else if (out) *out = k;
  return rv;
}

#define TOKEN_SELECT                                                                                   \
  "SELECT k.id, k.user_id, u.account_id, coalesce(k.zone_id, ''), k.created_at, coalesce(k.revoked_at, 0)" \
  " FROM api_tokens k JOIN users u ON u.id = k.user_id "

static const wr__store_col token_cols[] = {
    WR__COL(WR__COL_TEXT, wr_api_token, id),
    WR__COL(WR__COL_TEXT, wr_api_token, user_id),
    WR__COL(WR__COL_TEXT, wr_api_token, account_id),
    WR__COL(WR__COL_TEXT, wr_api_token, zone_id),
    WR__COL(WR__COL_INT64, wr_api_token, created_at),
    WR__COL(WR__COL_INT64, wr_api_token, revoked_at),
};
WR__STORE_ROW_READER(read_token, token_cols)

int wr_store_token_verify(wr_store *s, const char *token, wr_api_token *out) {
  uint8_t hash[32];
  wr_api_token k;
  int rv;
  /* Lookup by hash: the database never compares secrets, so there is no
   * timing oracle on the token itself. */
  if (!token || !*token || strlen(token) > 1024)
    return wr__store_serr(s, WR_ERR_DENIED, "invalid API token");
  if ((rv = token_hash(s, token, hash)) != WR_OK) return rv;
  rv = wr__store_one(s, "read API token", read_token, &k, NULL, NULL,
                     TOKEN_SELECT "WHERE k.token_hash = ?", "b", hash, sizeof(hash));
  if ((rv == WR_OK && k.revoked_at) || rv == WR_ERR_NOTFOUND)
    return wr__store_serr(s, WR_ERR_DENIED, "invalid API token");
  if (rv == WR_OK && out) *out = k;
  return rv;
}

int wr_store_token_revoke(wr_store *s, const char *actor, const char *token_id) {
  wr_api_token k;
  int rv;
  if ((rv = wr__store_tx_begin(s)) != WR_OK) return rv;
  if ((rv = wr__store_one(s, "read API token", read_token, &k, "no API token with id %s", token_id,
                          TOKEN_SELECT "WHERE k.id = lower(?)", "s", token_id)) != WR_OK)
    goto out;
  if (k.revoked_at) {
    rv = wr__store_serr(s, WR_ERR_INVAL, "API token %s is already revoked", k.id);
    goto out;
  }
  rv = wr__store_execf(s, NULL, "revoke API token",
                       "UPDATE api_tokens SET revoked_at = ? WHERE id = ?", "is", wr__store_now(s),
                       k.id);
  if (rv == WR_OK)
    rv = wr__store_audit_insert(s, actor, k.account_id, "token.revoke", "token", k.id,
                                json_pack("{s:s}", "user_id", k.user_id));
out:
  return wr__store_tx_end(s, rv);
}

/* --- users: passwords, listing, token rolling (edge/login.h) ---------------------- */

int wr_store_user_password_hash(wr_store *s, const char *user_id, char *out, size_t size) {
  wr_db_stmt *st;
  const char *h;
  char b[80];
  int rv;
  if (size) out[0] = '\0';
  if ((rv = wr__store_prepf(s, &st, "SELECT password_hash FROM users WHERE id = lower(?)", "s",
                            user_id)) != WR_OK)
    return rv;
  rv = wr__store_step_row(s, st, "read user");
  if (rv == WR_ERR_NOTFOUND) {
    wr__store_serr(s, rv, "no user with id %s",
                   wr__store_quote(user_id ? user_id : "", b, sizeof(b)));
  } else if (rv == WR_OK) {
    h = (const char *)wr_db_col_text(st, 0);
    if (!h)
      rv = wr__store_serr(s, WR_ERR_NOTFOUND, "user %s has no password",
                          wr__store_quote(user_id, b, sizeof(b)));
    else if (strlen(h) >= size)
      rv = wr__store_serr(s, WR_ERR_LIMIT, "the stored password hash is too long");
    else memcpy(out, h, strlen(h) + 1);
  }
  wr_db_finalize(st);
  return rv;
}

int wr_store_user_get(wr_store *s, const char *user_id, wr_user *out) {
  return wr__store_one(s, "read user", read_user, out, "no user with id %s", user_id,
                       USER_SELECT "WHERE id = lower(?)", "s", user_id);
}

int wr_store_user_set_password(wr_store *s, const char *actor, const char *user_id,
                               const char *password_hash) {
  wr_user u;
  int rv;
  if (password_hash && (rv = wr__store_check_text(s, "password hash", password_hash, 512)) != WR_OK)
    return rv;
  if ((rv = wr__store_tx_begin(s)) != WR_OK) return rv;
  if ((rv = wr_store_user_get(s, user_id, &u)) != WR_OK) goto out;
  rv = wr__store_execf(s, NULL, "set password", "UPDATE users SET password_hash = ? WHERE id = ?",
                       "ss", password_hash, u.id);
  if (rv == WR_OK)
    rv = wr__store_audit_insert(
        s, actor, u.account_id, "user.password", "user", u.id,
        json_pack("{s:s,s:b}", "email", u.email, "set", password_hash != NULL));
out:
  return wr__store_tx_end(s, rv);
}

int wr_store_user_list(wr_store *s, const char *account_id, wr_user **out, size_t *n) {
  int rv;
  *out = wr__store_list(
      s, &rv, n, "read users", sizeof(**out), read_user,
      USER_SELECT "WHERE (?1 IS NULL OR account_id = lower(?1)) ORDER BY lower(email), email",
      "s", account_id);
  return rv;
}

int wr_store_token_list(wr_store *s, const char *user_id, int include_revoked, wr_api_token **out,
                        size_t *n) {
  int rv;
  *out = wr__store_list(
      s, &rv, n, "read API tokens", sizeof(**out), read_token,
      TOKEN_SELECT "WHERE k.user_id = lower(?) AND (? <> 0 OR k.revoked_at IS NULL)"
      " ORDER BY k.created_at, k.id",
      "si", user_id, (int64_t)(include_revoked != 0));
  return rv;
}

int wr_store_token_roll(wr_store *s, const char *actor, const char *user_id, const char *zone_id,
                        char token[WR_STORE_TOKEN_LEN + 1], wr_api_token *out, size_t *revoked) {
  wr_user u;
  char msg[WR_STORE_ERRMSG_MAX];
  int rv, changed = 0;
  memset(token, 0, WR_STORE_TOKEN_LEN + 1);
  if (revoked) *revoked = 0;
  if ((rv = wr__store_tx_begin(s)) != WR_OK) return rv;
  if ((rv = wr_store_user_get(s, user_id, &u)) != WR_OK) goto out;
  if (zone_id && (rv = token_zone(s, zone_id, u.account_id, u.email, NULL)) != WR_OK) goto out;
  rv = wr__store_execf(
      s, &changed, "revoke API tokens",
      "UPDATE api_tokens SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL", "is",
      wr__store_now(s), u.id);
  if (rv == WR_OK)
    rv = wr__store_audit_insert(s, actor, u.account_id, "token.roll", "user", u.id,
                                json_pack("{s:s,s:i}", "email", u.email, "revoked", changed));
out:
  if ((rv = wr__store_tx_end(s, rv)) != WR_OK) return rv;
  if (revoked) *revoked = (size_t)changed;
  /* A second transaction: wr_store_token_create has its own. */
  if ((rv = wr_store_token_create(s, actor, u.id, zone_id, token, out)) != WR_OK) {
    snprintf(msg, sizeof(msg), "%s", s->errmsg);
    wr__store_serr(s, rv,
                   "revoked %d API token%s of %s but could not issue a new one (%s); run it again",
                   changed, changed == 1 ? "" : "s", u.email, msg);
  }
  return rv;
}
