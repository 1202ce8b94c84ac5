/*
 * t/check_fs.c: files on the blocking pool.
 */
#include <sys/stat.h>

#include "testutil.h"

#include <tide/fs.h>

typedef struct tmp {
    char dir[64];
    char path[96];
} tmp_t;

static void tmp_init(tmp_t *t, const char *name) {
    snprintf(t->dir, sizeof t->dir, "/tmp/tide-fs.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(t->dir));
    snprintf(t->path, sizeof t->path, "%s/%s", t->dir, name);
}

static void tmp_done(tmp_t *t) {
    unlink(t->path);
    rmdir(t->dir);
}

static tide_file_t *open_file(tide_exec_t *ex, const char *path, int flags,
                              size_t bufsize) {
    tide_fs_open_t op;
    intptr_t fd = t_run(ex, tide_fs_open(&op, path, flags, 0600));
    ck_assert_msg(fd >= 0, "open %s: %s", path, tide_strerror((int)fd));
    tide_file_t *f;
    ck_assert_int_eq(tide_file_new(&f, (int)fd, bufsize), 0);
    return f;
}

START_TEST(test_fs_write_then_read_back) {
    tide_exec_t *ex = t_exec_new();
    tmp_t t;
    tmp_init(&t, "data");
    enum { N = 200000 };
    unsigned char *out = malloc(N), *in = malloc(N + 1);
    t_pat_fill(out, N, 0);
    tide_file_t *f = open_file(ex, t.path, O_CREAT | O_WRONLY | O_TRUNC, 4096);
    tide_write_all_t wa;
    ck_assert_int_eq(
        t_run(ex, tide_write_all(&wa, tide_file_stream(f), out, N)), N);
    tide_file_sync_t sy;
    ck_assert_int_eq(t_run(ex, tide_file_sync(&sy, f, false)), 0);
    tide_file_free(f);
    struct stat st;
    ck_assert_int_eq(stat(t.path, &st), 0);
    ck_assert_int_eq(st.st_size, N);

    f = open_file(ex, t.path, O_RDONLY, 0);
    tide_read_exact_t re;
    ck_assert_int_eq(
        t_run(ex, tide_read_exact(&re, tide_file_stream(f), in, N)), N);
    ck_assert_int_eq(memcmp(in, out, N), 0);
    tide_read_t rd;
    ck_assert_int_eq(t_run(ex, tide_read(&rd, tide_file_stream(f), in, 10)),
                     0); /* end */
    ck_assert_int_eq(t_run(ex, tide_read(&rd, tide_file_stream(f), in, 10)),
                     0); /* again */
    tide_file_free(f);
    free(out);
    free(in);
    tmp_done(&t);
    t_exec_free_clean(ex);
}
END_TEST

START_TEST(test_fs_open_errors) {
    tide_exec_t *ex = t_exec_new();
    tide_fs_open_t op;
    ck_assert_int_eq(
        t_run(ex, tide_fs_open(&op, "/nonexistent/tide/x", O_RDONLY, 0)),
        -ENOENT);
    tide_file_t *f;
    ck_assert_int_eq(tide_file_new(&f, -1, 0), -EINVAL);
    ck_assert_int_eq(tide_file_new(NULL, 0, 0), -EINVAL);
    tide_file_free(NULL);
    /* an open dropped before its first poll */
    tide_future_drop(tide_fs_open(&op, "/dev/null", O_RDONLY, 0));
    t_exec_free_clean(ex);
}
END_TEST

/* A write after a read lands where the reader stopped, not after the
 * data read ahead. */
START_TEST(test_fs_write_after_read_goes_where_the_reader_stopped) {
    tide_exec_t *ex = t_exec_new();
    tmp_t t;
    tmp_init(&t, "rw");
    int fd = open(t.path, O_CREAT | O_RDWR | O_TRUNC, 0600);
    ck_assert_int_eq(write(fd, "abcdef", 6), 6);
    ck_assert_int_eq(lseek(fd, 0, SEEK_SET), 0);
    tide_file_t *f;
    ck_assert_int_eq(tide_file_new(&f, fd, 0), 0);
    char b[8] = {0};
    tide_read_exact_t re;
    ck_assert_int_eq(t_run(ex, tide_read_exact(&re, tide_file_stream(f), b, 2)),
                     2);
    ck_assert_int_eq(memcmp(b, "ab", 2), 0);
    tide_write_all_t wa;
    ck_assert_int_eq(
        t_run(ex, tide_write_all(&wa, tide_file_stream(f), "XY", 2)), 2);
    tide_flush_t fl;
    ck_assert_int_eq(t_run(ex, tide_flush(&fl, tide_file_stream(f))), 0);
    ck_assert_int_eq(t_run(ex, tide_read_exact(&re, tide_file_stream(f), b, 2)),
                     2);
    ck_assert_int_eq(memcmp(b, "ef", 2), 0);
    tide_file_free(f);
    char all[8] = {0};
    int rfd = open(t.path, O_RDONLY);
    ck_assert_int_eq(read(rfd, all, sizeof all), 6);
    close(rfd);
    ck_assert_str_eq(all, "abXYef");
    tmp_done(&t);
    t_exec_free_clean(ex);
}
END_TEST

/* A write error shows at the next write or flush: a read-only
 * descriptor. */
START_TEST(test_fs_write_error_is_reported_by_flush) {
    tide_exec_t *ex = t_exec_new();
    tide_file_t *f = open_file(ex, "/dev/null", O_RDONLY, 0);
    tide_write_t w;
    ck_assert_int_eq(t_run(ex, tide_write(&w, tide_file_stream(f), "x", 1)), 1);
    tide_flush_t fl;
    ck_assert_int_eq(t_run(ex, tide_flush(&fl, tide_file_stream(f))), -EBADF);
    ck_assert_int_eq(t_run(ex, tide_flush(&fl, tide_file_stream(f))), 0);
    tide_file_free(f);
    t_exec_free_clean(ex);
}
END_TEST

/* Freeing a file while its read blocks on a pool thread (a pipe with no
 * writer data): the pool thread frees it when the read returns. ASan and
 * valgrind check that nothing is touched after, nor leaked. */
START_TEST(test_fs_free_while_a_job_runs) {
    tide_exec_t *ex = t_exec_new();
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    tide_file_t *f;
    ck_assert_int_eq(tide_file_new(&f, p[0], 0), 0);
    t_hand_t h;
    t_hand_init(&h, ex);
    tide_read_t rd;
    char b[4];
    tide_future_t *rf = tide_read(&rd, tide_file_stream(f), b, sizeof b);
    ck_assert_int_eq(t_hand_poll(&h, rf), TIDE_PENDING);
    tide_blocking_stats_t st;
    for (int i = 0; i < (int)t_watchdog_ms(5000); i++) {
        tide_blocking_stats(ex, &st);
        if (st.jobs == 1)
            break;
        usleep(1000);
    }
    ck_assert_uint_eq(st.jobs, 1); /* read(2) is blocking on the pipe */
    tide_file_free(f);
    ck_assert_int_eq(t_hand_poll(&h, rf), TIDE_READY);
    ck_assert_int_eq(rf->result, -EBADF);
    tide_future_drop(rf);
    ck_assert_int_eq(write(p[1], "z", 1), 1); /* the read returns */
    t_hand_done(&h);
    t_exec_free_clean(ex); /* joins the thread, after it freed the file */
    close(p[1]);
}
END_TEST

START_TEST(test_alloc_file_new) {
    for (unsigned long n = 1; n <= 2; n++) {
        int fd = open("/dev/null", O_RDONLY);
        tide_file_t *f;
        tide__alloc_fail_at(n);
        t_assert_int_eq_at(n, tide_file_new(&f, fd, 0), -ENOMEM);
        tide__alloc_fail_at(0);
        close(fd); /* not taken on error */
    }
    tide_exec_t *ex = t_exec_new();
    t_hand_t h;
    t_hand_init(&h, ex);
    tide_fs_open_t op;
    tide_future_t *f = tide_fs_open(&op, "/dev/null", O_RDONLY, 0);
    tide__alloc_fail_at(1); /* the open's copy of its path */
    ck_assert_int_eq(t_hand_poll(&h, f), TIDE_READY);
    tide__alloc_fail_at(0);
    ck_assert_int_eq(f->result, -ENOMEM);
    tide_future_drop(f);
    t_hand_done(&h);
    t_exec_free_clean(ex);
}
END_TEST

static Suite *fs_suite(void) {
    Suite *s = suite_create("fs");
    TCase *tc = t_tcase(s, "file", 30);
    tcase_add_test(tc, test_fs_write_then_read_back);
    tcase_add_test(tc, test_fs_open_errors);
    tcase_add_test(tc, test_fs_write_after_read_goes_where_the_reader_stopped);
    tcase_add_test(tc, test_fs_write_error_is_reported_by_flush);
    tcase_add_test(tc, test_fs_free_while_a_job_runs);
    tcase_add_test(tc, test_alloc_file_new);
    return s;
}

int main(void) { return t_run_suite(fs_suite()); }
