/*
 * Classes and their instances.
 *
 * A class object (type "type") owns a heap type made at run time: the rc_type
 * its instances point to, with a field table generated from the class:
 *
 *   dict-based   { head; __class__; __dict__ }       a dict made with each
 *                                                     instance (as in Python)
 *   slotted      { head; __class__; slot0 ... }       one REF per slot name
 *
 * Every instance holds a strong reference to its class, so a class outlives
 * its instances; the class itself holds no reference and is never tracked.
 *
 * Freeing the heap type. The class dies when its last instance lets go of
 * it, and that happens in the middle of the instance's own deallocation
 * (object.c releases __class__, then calls destroy and frees the block, both
 * of which read the type), or when the collector clears an instance that
 * will be deallocated later. So the class's death only marks the type
 * RC_TPF_DEAD and unregisters it; the memory is freed once no instance is
 * left that could still read it:
 *
 *   ninstances = instances created - instances whose destroy has run
 *
 * and a type is freed when its class is dead and ninstances == 0, checked at
 * points where no instance deallocation can be half done: class death
 * itself (a class that dies with ninstances == 0 was not released by an
 * instance), rc_class_new, rc_instance_new and _rc_builtins_shutdown.
 * Nothing runs between an instance's destroy and the freeing of its block.
 * (With debug checks on, dead types are kept until rc_shutdown: see
 * reap_heaptypes.)
 *
 * Readers of a core follow ob_type of freed blocks too: a freed instance of
 * a freed class points at freed memory. Readers validate type pointers
 * against the registry's type table; we prefer freeing (valgrind stays
 * clean) to keeping every dead class's type forever.
 */
#include "builtins.h"

#include <stdlib.h>
#include <string.h>

typedef struct heaptype {
    rc_type type;           /* first: an instance's ob_type is a heaptype * */
    rc_field *fieldtab;     /* __class__, then __dict__ or the slots, END */
    char *name;             /* the class name */
    char **slot_names;      /* NULL for a dict-based class */
    size_t nslots;
    size_t nfields;         /* entries in fieldtab, END included */
    bool slotted;
    bool class_dead;
    size_t ninstances;      /* created and not yet destroyed */
    struct heaptype *prev;  /* every heap type not yet freed */
    struct heaptype *next;
} heaptype;

static heaptype *heaptypes;

/* ========================================================================
 * Heap types
 * ===================================================================== */

static void instance_destroy(rc_object *self)
{
    heaptype *ht = (heaptype *)self->ob_type;
    ht->ninstances--;
}

/* The heap type of an instance, or NULL for anything else. instance_destroy
 * identifies our heap types: no other type uses it. */
static heaptype *instance_type(const rc_object *o)
{
    if (o && o->ob_type->destroy == instance_destroy)
        return (heaptype *)o->ob_type;
    return NULL;
}

static void free_heaptype(heaptype *ht)
{
    if (ht->prev)
        ht->prev->next = ht->next;
    else
        heaptypes = ht->next;
    if (ht->next)
        ht->next->prev = ht->prev;
    for (size_t i = 0; i < ht->nslots; i++)
        free(ht->slot_names[i]);
    free(ht->slot_names);
    free(ht->fieldtab);
    free(ht->name);
    free(ht);
}

/* Free the types of dead classes that no instance can read any more.
 * With debug checks on, freed blocks sit in object.c's quarantine and are
 * looked at again (their ob_type) when they leave it: keep dead types until
 * rc_shutdown then. */
static void reap_heaptypes(void)
{
    if (REG.debug_checks)
        return;
    heaptype *ht = heaptypes;
    while (ht) {
        heaptype *next = ht->next;
        if (ht->class_dead && ht->ninstances == 0)
            free_heaptype(ht);
        ht = next;
    }
}

void _rc_builtins_shutdown(void)
{
    while (heaptypes)
        free_heaptype(heaptypes);
}

/* Types still held at exit (kept for debug checks, or dead classes whose
 * last instances went with rc_shutdown's teardown): release them so leak
 * checkers stay quiet, unless the runtime is still running. */
__attribute__((destructor)) static void release_heaptypes_at_exit(void)
{
    if (!_rc_initialized)
        _rc_builtins_shutdown();
}

size_t _rc_class_extra_size(rc_object *co)
{
    heaptype *ht = (heaptype *)((rc_class_object *)co)->itype;
    if (!ht)
        return 0;
    size_t n = sizeof(heaptype) + ht->nfields * sizeof(rc_field) + strlen(ht->name) + 1;
    n += ht->nslots * sizeof(char *);
    for (size_t i = 0; i < ht->nslots; i++)
        n += strlen(ht->slot_names[i]) + 1;
    return n;
}

/* ========================================================================
 * The class type
 * ===================================================================== */

static void class_destroy(rc_object *self)
{
    rc_class_object *cls = (rc_class_object *)self;
    heaptype *ht = (heaptype *)cls->itype;
    if (!ht)
        return;
    ht->class_dead = true;
    ht->type.tp_flags |= RC_TPF_DEAD;
    if (ht->type.tp_id != 0)
        _rc_unregister_type(&ht->type);
    reap_heaptypes(); /* frees ht now unless an instance is still being torn down */
}

rc_type rc_class_type = {
    .name = "type",
    .size = sizeof(rc_class_object),
    .destroy = class_destroy,
    /* Readers name a class by its own name: "type Point". */
    .tp_name_offset = (uint32_t)offsetof(rc_class_object, name),
};

static bool reserved_name(const char *s)
{
    return strcmp(s, "__class__") == 0 || strcmp(s, "__dict__") == 0;
}

rc_object *rc_class_new_at(rc_site *site, const char *name, const char *const *slots,
                           void (*del)(rc_object *self), unsigned flags)
{
    reap_heaptypes();
    if (!name) {
        _rc_error("rc_class_new: the name is NULL");
        return NULL;
    }
    if (flags & ~RC_CLASS_LEGACY_DEL) {
        _rc_error("rc_class_new: unknown flags 0x%x", flags & ~RC_CLASS_LEGACY_DEL);
        return NULL;
    }
    size_t nslots = 0;
    if (slots) {
        for (; slots[nslots]; nslots++) {
            if (reserved_name(slots[nslots]) || slots[nslots][0] == '\0') {
                _rc_error("rc_class_new: '%s' is not a valid slot name of class '%s'",
                          slots[nslots], name);
                return NULL;
            }
            for (size_t j = 0; j < nslots; j++) {
                if (strcmp(slots[j], slots[nslots]) == 0) {
                    _rc_error("rc_class_new: slot '%s' of class '%s' is given twice",
                              slots[j], name);
                    return NULL;
                }
            }
        }
        if (nslots > (SIZE_MAX / 4 - sizeof(rc_instance_object)) / sizeof(rc_object *)) {
            _rc_error("rc_class_new: too many slots");
            return NULL;
        }
    }

    heaptype *ht = _rc_xcalloc(1, sizeof(heaptype));
    ht->name = _rc_xstrdup(name);
    ht->slotted = slots != NULL;
    ht->nslots = nslots;
    size_t nrefs = ht->slotted ? nslots : 1; /* the slots, or __dict__ */
    ht->nfields = 1 + nrefs + 1;
    ht->fieldtab = _rc_xcalloc(ht->nfields, sizeof(rc_field));
    ht->fieldtab[0] = (rc_field){"__class__", RC_FIELD_REF,
                                 (uint32_t)offsetof(rc_instance_object, cls), 0, 0};
    if (ht->slotted) {
        ht->slot_names = _rc_xcalloc(nslots ? nslots : 1, sizeof(char *));
        for (size_t i = 0; i < nslots; i++) {
            ht->slot_names[i] = _rc_xstrdup(slots[i]);
            ht->fieldtab[1 + i] = (rc_field){
                ht->slot_names[i], RC_FIELD_REF,
                (uint32_t)(offsetof(rc_instance_object, slots) + i * sizeof(rc_object *)), 0, 0};
        }
    } else {
        ht->fieldtab[1] = (rc_field){"__dict__", RC_FIELD_REF,
                                     (uint32_t)offsetof(rc_instance_object, slots), 0, 0};
    }
    /* fieldtab[nfields - 1] is zeroed: RC_FIELDS_END */

    ht->type.name = ht->name;
    ht->type.size = offsetof(rc_instance_object, slots) + nrefs * sizeof(rc_object *);
    ht->type.fields = ht->fieldtab;
    if (flags & RC_CLASS_LEGACY_DEL)
        ht->type.legacy_del = del;
    else
        ht->type.finalize = del;
    ht->type.destroy = instance_destroy;
    ht->type.tp_flags = RC_TPF_HEAPTYPE;

    rc_class_object *cls = rc_new_at(&rc_class_type, sizeof(rc_class_object), site);
    if (!cls) {
        free_heaptype(ht);
        return NULL;
    }
    ht->next = heaptypes;
    if (heaptypes)
        heaptypes->prev = ht;
    heaptypes = ht;
    cls->name = ht->name;
    cls->itype = &ht->type;
    cls->nslots = nslots;
    cls->flags = flags | (ht->slotted ? RC_CLASSF_SLOTTED : 0);
    return RC_OBJ(cls);
}

/* ========================================================================
 * Instances
 * ===================================================================== */

rc_object *rc_instance_new_at(rc_site *site, rc_object *co)
{
    if (!_rc_expect("rc_instance_new", co, &rc_class_type, "a class"))
        return NULL;
    reap_heaptypes();
    heaptype *ht = (heaptype *)((rc_class_object *)co)->itype;
    rc_instance_object *inst = rc_new_at(&ht->type, ht->type.size, site);
    if (!inst)
        return NULL;
    ht->ninstances++;
    inst->cls = rc_incref(co);
    if (!ht->slotted) {
        /* The dict comes with the instance, so its memory counts where the
         * instance was made (as in Python, where every instance of a class
         * without __slots__ carries one). */
        inst->slots[0] = rc_dict_new_at(site);
        if (!inst->slots[0]) {
            rc_decref(inst);
            return NULL;
        }
    }
    return RC_OBJ(inst);
}

/* The index of slot `name`, or -1. */
static ptrdiff_t find_slot(const heaptype *ht, const char *name)
{
    for (size_t i = 0; i < ht->nslots; i++) {
        if (strcmp(ht->slot_names[i], name) == 0)
            return (ptrdiff_t)i;
    }
    return -1;
}

static int no_attribute(const rc_object *o, const char *name)
{
    if (o && o->ob_type == &rc_class_type)
        return _rc_error("type object '%s' has no attribute '%s'",
                         ((const rc_class_object *)o)->name, name);
    return _rc_error("'%s' object has no attribute '%s'", o ? o->ob_type->name : "NULL", name);
}

int rc_setattr(rc_object *o, const char *name, rc_object *value)
{
    if (!name)
        return _rc_error("rc_setattr: the name is NULL");
    heaptype *ht = instance_type(o);
    if (!ht) {
        if (!o)
            return _rc_error("rc_setattr: expected an instance, got NULL");
        if (o->ob_type == &rc_class_type)
            return _rc_error("rc_setattr: cannot set attribute '%s' of class '%s'", name,
                             ((rc_class_object *)o)->name);
        return no_attribute(o, name);
    }
    if (reserved_name(name))
        return _rc_error("rc_setattr: cannot assign '%s' of a '%s' object", name,
                         ht->type.name);
    rc_instance_object *inst = (rc_instance_object *)o;

    if (!ht->slotted) {
        rc_object *dict = inst->slots[0];
        if (!value) { /* delattr */
            if (!dict || !rc_dict_get(dict, name))
                return no_attribute(o, name);
            return rc_dict_del(dict, name);
        }
        if (!dict) {
            /* The collector cleared the instance; it lives on, so give it
             * a fresh dict (CPython makes __dict__ lazily too). */
            dict = rc_dict_new_at(RC_INTERNAL_SITE);
            if (!dict)
                return -1;
            inst->slots[0] = dict;
        }
        return rc_dict_set(dict, name, value);
    }

    ptrdiff_t i = find_slot(ht, name);
    if (i < 0)
        return no_attribute(o, name);
    rc_object *old = inst->slots[i];
    if (!value && !old)
        return no_attribute(o, name);
    inst->slots[i] = value ? rc_incref(value) : NULL;
    rc_xdecref(old); /* last: may run code that uses the instance */
    return 0;
}

rc_object *rc_getattr(rc_object *o, const char *name)
{
    if (!name) {
        _rc_error("rc_getattr: the name is NULL");
        return NULL;
    }
    heaptype *ht = instance_type(o);
    if (!ht) {
        no_attribute(o, name);
        return NULL;
    }
    rc_instance_object *inst = (rc_instance_object *)o;
    rc_object *v = NULL;
    if (strcmp(name, "__class__") == 0) {
        v = inst->cls;
    } else if (!ht->slotted) {
        rc_object *dict = inst->slots[0];
        if (strcmp(name, "__dict__") == 0)
            v = dict;
        else if (dict)
            v = rc_dict_get(dict, name);
    } else {
        ptrdiff_t i = find_slot(ht, name);
        if (i >= 0)
            v = inst->slots[i];
    }
    if (!v)
        no_attribute(o, name);
    return v;
}

rc_object *rc_instance_class(rc_object *o)
{
    if (!instance_type(o)) {
        _rc_error("rc_instance_class: expected an instance, got %s",
                  o ? o->ob_type->name : "NULL");
        return NULL;
    }
    rc_object *cls = ((rc_instance_object *)o)->cls;
    if (!cls)
        _rc_error("rc_instance_class: the instance was cleared by the collector");
    return cls;
}
