/*
 * unwind.c -- threads, their stacks, and frames.
 *
 * Unwinding uses call frame information (.eh_frame, else .debug_frame) of
 * the module holding each pc: the CFA rule gives the caller's rsp, the
 * register rules give the caller's registers (return address = column 16).
 * Where a pc has no CFI (no module, stripped of .eh_frame, JIT code) the
 * rbp chain is tried: [rbp] = caller's rbp, [rbp + 8] = return address,
 * CFA = rbp + 16. Where that fails too, unwinding stops with a warning.
 *
 * Invariant of the result: frames[i].sp < frames[i].cfa == frames[i+1].sp,
 * so every stack word belongs to at most one frame.
 */
#include "target_int.h"

#include <libdwarf/dwarf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_FRAMES 1024

size_t rs_thread_count(const rs_target *t) { return t->nthreads; }

const rs_thread *rs_thread_get(const rs_target *t, size_t i)
{
    return i < t->nthreads ? &t->threads[i] : NULL;
}

/* ---- stack words --------------------------------------------------------------- */

void rs_stack_iter_init(rs_stack_iter *it, rs_target *t, const rs_thread *thread)
{
    it->target = t;
    it->addr = thread->stack_start & ~(uint64_t)7;
    it->end = thread->stack_end;
    it->base = it->addr;
    it->pos = it->n = 0;
}

bool rs_stack_iter_next(rs_stack_iter *it, uint64_t *slot_addr, uint64_t *value)
{
    if (it->pos == it->n) {
        if (it->addr + 8 > it->end)
            return false;
        uint64_t want = (it->end - it->addr) / 8;
        if (want > sizeof it->buf / 8)
            want = sizeof it->buf / 8;
        size_t got = rs_read(it->target, it->addr, it->buf, want * 8) / 8;
        if (got == 0) {
            it->addr = it->end; /* an unreadable page ends the stack */
            return false;
        }
        it->base = it->addr;
        it->n = got;
        it->pos = 0;
        it->addr += got * 8;
    }
    *slot_addr = it->base + it->pos * 8;
    *value = it->buf[it->pos++];
    return true;
}

/* ---- registers ----------------------------------------------------------------- */

/* DWARF register number -> rs_regs field. */
static uint64_t *reg_slot(rs_regs *r, int dw)
{
    switch (dw) {
    case 0: return &r->rax;
    case 1: return &r->rdx;
    case 2: return &r->rcx;
    case 3: return &r->rbx;
    case 4: return &r->rsi;
    case 5: return &r->rdi;
    case 6: return &r->rbp;
    case 7: return &r->rsp;
    case 8: return &r->r8;
    case 9: return &r->r9;
    case 10: return &r->r10;
    case 11: return &r->r11;
    case 12: return &r->r12;
    case 13: return &r->r13;
    case 14: return &r->r14;
    case 15: return &r->r15;
    case 16: return &r->rip;
    default: return NULL;
    }
}

typedef struct regset {
    uint64_t v[RS_NREGS];
    bool ok[RS_NREGS];
} regset;

/* ---- DWARF expressions (CFI subset) -------------------------------------------- */

static int64_t sleb(const uint8_t **p, const uint8_t *end)
{
    int64_t v = 0;
    unsigned shift = 0;
    uint8_t b = 0;
    while (*p < end) {
        b = *(*p)++;
        if (shift < 64)
            v |= (int64_t)((uint64_t)(b & 0x7f) << shift);
        shift += 7;
        if (!(b & 0x80))
            break;
    }
    if (shift < 64 && (b & 0x40))
        v |= -((int64_t)1 << shift);
    return v;
}

static uint64_t uleb(const uint8_t **p, const uint8_t *end)
{
    uint64_t v = 0;
    unsigned shift = 0;
    while (*p < end) {
        uint8_t b = *(*p)++;
        if (shift < 64)
            v |= (uint64_t)(b & 0x7f) << shift;
        shift += 7;
        if (!(b & 0x80))
            break;
    }
    return v;
}

/* Evaluate a CFI expression; push_first: the CFA is pushed first (register
 * rules), not for the CFA rule itself. */
static bool eval(rs_target *t, const uint8_t *p, size_t n, const regset *rs, bool push_first,
                 uint64_t first, uint64_t *out)
{
    uint64_t st[64];
    size_t sp = 0;
    const uint8_t *end = p + n;
    if (push_first)
        st[sp++] = first;
#define NEED(k) do { if (sp < (k)) return false; } while (0)
#define PUSH(x) do { uint64_t v_ = (x); if (sp >= 64) return false; st[sp++] = v_; } while (0)
    while (p < end) {
        uint8_t op = *p++;
        if (op >= DW_OP_lit0 && op <= DW_OP_lit31) {
            PUSH((uint64_t)(op - DW_OP_lit0));
        } else if (op >= DW_OP_breg0 && op <= DW_OP_breg31) {
            int r = op - DW_OP_breg0;
            int64_t off = sleb(&p, end);
            if (r >= RS_NREGS || !rs->ok[r])
                return false;
            PUSH(rs->v[r] + (uint64_t)off);
        } else {
            uint64_t a, b;
            switch (op) {
            case DW_OP_bregx: {
                uint64_t r = uleb(&p, end);
                int64_t off = sleb(&p, end);
                if (r >= RS_NREGS || !rs->ok[r])
                    return false;
                PUSH(rs->v[r] + (uint64_t)off);
                break;
            }
            case DW_OP_const1u: if (p + 1 > end) return false; PUSH(*p); p += 1; break;
            case DW_OP_const1s: if (p + 1 > end) return false; PUSH((uint64_t)(int64_t)(int8_t)*p); p += 1; break;
            case DW_OP_const2u: { uint16_t v; if (p + 2 > end) return false; memcpy(&v, p, 2); PUSH(v); p += 2; break; }
            case DW_OP_const2s: { int16_t v; if (p + 2 > end) return false; memcpy(&v, p, 2); PUSH((uint64_t)(int64_t)v); p += 2; break; }
            case DW_OP_const4u: { uint32_t v; if (p + 4 > end) return false; memcpy(&v, p, 4); PUSH(v); p += 4; break; }
            case DW_OP_const4s: { int32_t v; if (p + 4 > end) return false; memcpy(&v, p, 4); PUSH((uint64_t)(int64_t)v); p += 4; break; }
            case DW_OP_const8u:
            case DW_OP_const8s: { uint64_t v; if (p + 8 > end) return false; memcpy(&v, p, 8); PUSH(v); p += 8; break; }
            case DW_OP_constu: PUSH(uleb(&p, end)); break;
            case DW_OP_consts: PUSH((uint64_t)sleb(&p, end)); break;
            case DW_OP_dup: NEED(1); PUSH(st[sp - 1]); break;
            case DW_OP_drop: NEED(1); sp--; break;
            case DW_OP_over: NEED(2); PUSH(st[sp - 2]); break;
            case DW_OP_swap: NEED(2); a = st[sp - 1]; st[sp - 1] = st[sp - 2]; st[sp - 2] = a; break;
            case DW_OP_deref:
                NEED(1);
                if (!rs_read_u64(t, st[sp - 1], &st[sp - 1]))
                    return false;
                break;
            case DW_OP_plus_uconst: NEED(1); st[sp - 1] += uleb(&p, end); break;
            case DW_OP_neg: NEED(1); st[sp - 1] = -st[sp - 1]; break;
            case DW_OP_not: NEED(1); st[sp - 1] = ~st[sp - 1]; break;
            case DW_OP_plus: case DW_OP_minus: case DW_OP_mul: case DW_OP_and: case DW_OP_or:
            case DW_OP_xor: case DW_OP_shl: case DW_OP_shr: case DW_OP_shra: case DW_OP_eq:
            case DW_OP_ne: case DW_OP_lt: case DW_OP_le: case DW_OP_gt: case DW_OP_ge:
                NEED(2);
                b = st[--sp];
                a = st[sp - 1];
                switch (op) {
                case DW_OP_plus: a += b; break;
                case DW_OP_minus: a -= b; break;
                case DW_OP_mul: a *= b; break;
                case DW_OP_and: a &= b; break;
                case DW_OP_or: a |= b; break;
                case DW_OP_xor: a ^= b; break;
                case DW_OP_shl: a = b < 64 ? a << b : 0; break;
                case DW_OP_shr: a = b < 64 ? a >> b : 0; break;
                case DW_OP_shra: a = (uint64_t)((int64_t)a >> (b < 63 ? b : 63)); break;
                case DW_OP_eq: a = a == b; break;
                case DW_OP_ne: a = a != b; break;
                case DW_OP_lt: a = (int64_t)a < (int64_t)b; break;
                case DW_OP_le: a = (int64_t)a <= (int64_t)b; break;
                case DW_OP_gt: a = (int64_t)a > (int64_t)b; break;
                case DW_OP_ge: a = (int64_t)a >= (int64_t)b; break;
                }
                st[sp - 1] = a;
                break;
            case DW_OP_skip: {
                int16_t off;
                if (p + 2 > end) return false;
                memcpy(&off, p, 2);
                p += 2 + off;
                if (p < end - n || p > end) return false;
                break;
            }
            case DW_OP_bra: {
                int16_t off;
                if (p + 2 > end) return false;
                memcpy(&off, p, 2);
                p += 2;
                NEED(1);
                if (st[--sp] != 0)
                    p += off;
                if (p < end - n || p > end) return false;
                break;
            }
            case DW_OP_nop: break;
            default: return false;
            }
        }
    }
#undef NEED
#undef PUSH
    if (sp == 0)
        return false;
    *out = st[sp - 1];
    return true;
}

/* ---- one step ------------------------------------------------------------------- */

/* From the registers of a frame, compute the CFA and the caller's registers
 * with CFI. *signal_frame: the caller was interrupted (its pc is exact). */
static bool step_cfi(rs_target *t, const regset *cur, uint64_t lookup_pc, regset *caller,
                     uint64_t *cfa, bool *signal_frame)
{
    rs_mod *m = rs__mod_at(t, lookup_pc);
    rs_cfi_row row;
    if (!m || rs__cfi_row(t, m, lookup_pc - m->pub.bias, &row) != 0)
        return false;
    if (row.cfa.kind == RS_RULE_REGISTER) {
        if (row.cfa.reg < 0 || row.cfa.reg >= RS_NREGS || !cur->ok[row.cfa.reg])
            return false;
        *cfa = cur->v[row.cfa.reg] + (uint64_t)row.cfa.offset;
    } else if (!eval(t, row.cfa.expr, row.cfa.exprlen, cur, false, 0, cfa)) {
        return false;
    }
    for (int r = 0; r < RS_NREGS; r++) {
        const rs_rule *rule = &row.regs[r];
        caller->ok[r] = false;
        uint64_t a;
        switch (rule->kind) {
        case RS_RULE_SAME:
            caller->v[r] = cur->v[r];
            caller->ok[r] = cur->ok[r];
            break;
        case RS_RULE_UNDEFINED:
            break;
        case RS_RULE_OFFSET:
            caller->ok[r] = rs_read_u64(t, *cfa + (uint64_t)rule->offset, &caller->v[r]);
            break;
        case RS_RULE_VAL_OFFSET:
            caller->v[r] = *cfa + (uint64_t)rule->offset;
            caller->ok[r] = true;
            break;
        case RS_RULE_REGISTER:
            if (rule->reg >= 0 && rule->reg < RS_NREGS && cur->ok[rule->reg]) {
                caller->v[r] = cur->v[rule->reg];
                caller->ok[r] = true;
            }
            break;
        case RS_RULE_EXPRESSION:
            if (eval(t, rule->expr, rule->exprlen, cur, true, *cfa, &a))
                caller->ok[r] = rs_read_u64(t, a, &caller->v[r]);
            break;
        case RS_RULE_VAL_EXPRESSION:
            caller->ok[r] = eval(t, rule->expr, rule->exprlen, cur, true, *cfa, &caller->v[r]);
            break;
        }
    }
    /* The caller's rsp is the CFA unless a rule says otherwise. */
    if (row.regs[RS_REG_RSP].kind == RS_RULE_SAME || row.regs[RS_REG_RSP].kind == RS_RULE_UNDEFINED) {
        caller->v[RS_REG_RSP] = *cfa;
        caller->ok[RS_REG_RSP] = true;
    }
    /* No rule for the return address column: nothing to return to. */
    if (row.regs[RS_REG_RA].kind == RS_RULE_SAME)
        caller->ok[RS_REG_RA] = false;
    *signal_frame = row.signal_frame;
    return true;
}

static bool step_fp(rs_target *t, const regset *cur, const rs_thread *th, regset *caller,
                    uint64_t *cfa)
{
    if (!cur->ok[RS_REG_RBP])
        return false;
    uint64_t rbp = cur->v[RS_REG_RBP];
    uint64_t sp = cur->ok[RS_REG_RSP] ? cur->v[RS_REG_RSP] : th->stack_start;
    if ((rbp & 7) || rbp < sp || rbp + 16 > th->stack_end)
        return false;
    uint64_t saved[2];
    if (rs_read(t, rbp, saved, sizeof saved) != sizeof saved)
        return false;
    if (!rs__mod_at(t, saved[1]))
        return false; /* not a return address: rbp is not a frame pointer here */
    memset(caller, 0, sizeof *caller);
    caller->v[RS_REG_RBP] = saved[0];
    caller->ok[RS_REG_RBP] = true;
    caller->v[RS_REG_RA] = saved[1];
    caller->ok[RS_REG_RA] = true;
    *cfa = rbp + 16;
    caller->v[RS_REG_RSP] = *cfa;
    caller->ok[RS_REG_RSP] = true;
    return true;
}

/* ---- frames --------------------------------------------------------------------- */

static void name_frame(rs_target *t, rs_frame *f, bool exact)
{
    rs_srcloc loc;
    /* A return address points after the call: look up the call itself. */
    uint64_t at = exact || f->pc == 0 ? f->pc : f->pc - 1;
    f->module = rs_module_at(t, at);
    /* A system library whose DWARF lives in a separate debug file (libc
     * with libc6-dbg installed) is named from its symbol table: indexing
     * its DWARF to say "abort" would cost most of a run. */
    const rs_mod *m = (const rs_mod *)(const void *)f->module;
    rs_symbol sym;
    if (m && m->debug_path && !m->pub.is_exe) {
        if (rs_symbol_at(t, at, &sym) == 0)
            f->function = sym.name;
        return;
    }
    if (rs_addr_to_line(t, at, &loc) == 0) {
        f->function = loc.function;
        f->file = loc.file;
        f->line = loc.line;
    }
}

static void unwind(rs_target *t, size_t ti)
{
    const rs_thread *th = &t->threads[ti];
    rs_frames *fr = &t->frames[ti];
    fr->done = true;
    size_t cap = 0;
    regset cur;
    memset(&cur, 0, sizeof cur);
    for (int r = 0; r < RS_NREGS; r++) {
        cur.v[r] = *reg_slot((rs_regs *)&th->regs, r);
        cur.ok[r] = true;
    }
    bool exact = true; /* frame 0 (and frames a signal interrupted): pc is not a return address */
    rs_unwind_how how = RS_FRAME_REGS;
    bool fp_warned = false;
    for (size_t n = 0; n < MAX_FRAMES; n++) {
        rs__grow(&fr->frames, &cap, fr->n + 1, sizeof *fr->frames);
        rs_frame *f = &fr->frames[fr->n++];
        memset(f, 0, sizeof *f);
        f->pc = cur.v[RS_REG_RA];
        f->sp = cur.v[RS_REG_RSP];
        f->cfa = th->stack_end; /* until we know better */
        f->how = how;
        name_frame(t, f, exact);

        regset caller;
        uint64_t cfa = 0;
        bool sig = false;
        uint64_t lookup = exact ? f->pc : f->pc - 1;
        if (step_cfi(t, &cur, lookup, &caller, &cfa, &sig)) {
            how = RS_FRAME_CFI;
        } else if (step_fp(t, &cur, th, &caller, &cfa)) {
            how = RS_FRAME_FP;
            if (!fp_warned) {
                char where[256];
                rs_describe_addr(t, lookup, where, sizeof where);
                rs__warn(t, "thread %d: no call frame information for %s: followed the frame "
                         "pointer chain from there (frames may be missed)", th->tid, where);
                fp_warned = true;
            }
        } else {
            if (f->pc != 0) {
                char where[256];
                rs_describe_addr(t, lookup, where, sizeof where);
                rs__warn(t, "thread %d: cannot unwind past frame #%zu (%s): the rest of its "
                         "stack is attributed to that frame", th->tid, n, where);
            }
            break;
        }
        if (!caller.ok[RS_REG_RA] || caller.v[RS_REG_RA] == 0)
            break; /* the outermost frame (_start, clone): RA undefined */
        if (cfa <= f->sp || cfa > th->stack_end) {
            rs__warn(t, "thread %d: unwinding stopped at frame #%zu: the caller's stack "
                     "pointer 0x%llx is outside the stack", th->tid, n, (unsigned long long)cfa);
            break;
        }
        f->cfa = cfa;
        cur = caller;
        cur.v[RS_REG_RSP] = cfa;
        cur.ok[RS_REG_RSP] = true;
        exact = sig;
    }
    if (fr->n)
        fr->frames[fr->n - 1].cfa = th->stack_end; /* the last frame owns the rest */
}

int rs_thread_frames(rs_target *t, size_t thread, const rs_frame **ret, size_t *count,
                     rs_error *err)
{
    *ret = NULL;
    *count = 0;
    if (thread >= t->nthreads) {
        rs__seterr(err, "no thread #%zu (the target has %zu)", thread, t->nthreads);
        return -1;
    }
    if (!t->frames)
        t->frames = rs__xcalloc(t->nthreads, sizeof *t->frames);
    if (!t->frames[thread].done)
        unwind(t, thread);
    *ret = t->frames[thread].frames;
    *count = t->frames[thread].n;
    return 0;
}

int rs_frame_of_slot(rs_target *t, size_t thread, uint64_t addr)
{
    const rs_frame *f;
    size_t n;
    if (rs_thread_frames(t, thread, &f, &n, NULL) != 0)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (addr >= f[i].sp && addr < f[i].cfa)
            return (int)i;
    return -1;
}
