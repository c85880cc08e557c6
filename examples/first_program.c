/* The first program of README.md (kept identical). */
#include <stdio.h>
#include <troupe.h>

static void greeter(void *arg) {
  tr_msg_t *m;
  while (tr_recv(&m, -1) == 0) {            /* blocks only this actor */
    const msgpack_object *o = tr_msg_obj(m);
    if (tr_msg_is_tag(m, "hello"))
      printf("hello, %.*s\n", (int)o->via.array.ptr[1].via.str.size,
             o->via.array.ptr[1].via.str.ptr);
    tr_msg_free(m);
  }
}

static void crasher(void *arg) { *(volatile int *)arg = 1; }  /* NULL deref */

static void main_actor(void *arg) {
  tr_pid_t g, c; tr_ref_t ref; tr_msg_t *m; tr_reason_t why;
  tr_spawn_link(greeter, NULL, &g);
  tr_send_tagged(g, "hello", "s", "world");          /* ["hello", "world"] */
  tr_spawn_monitor(crasher, NULL, &c, &ref);
  tr_recv(&m, -1);                                   /* DOWN from crasher */
  tr_msg_reason(m, &why);
  printf("crasher died: %s\n", tr_reason_name(why.kind));   /* "segv" */
  tr_msg_free(m);
  tr_exit(TR_REASON_SHUTDOWN);                       /* takes greeter along */
}

int main(void) {
  tr_runtime_t *rt;
  tr_runtime_new(&rt, NULL);
  tr_spawn(rt, main_actor, NULL, NULL, NULL);
  tr_runtime_run(rt);                                /* until all have exited */
  return tr_runtime_free(rt);
}
