// The GNU build ID of the running executable (NT_GNU_BUILD_ID, which the linker
// writes into every build), read from its program headers in memory: what tells
// one build of edshim from another with the same version.
#define _GNU_SOURCE
#include "CEdshimLinux.h"

#include <elf.h>
#include <link.h>
#include <string.h>

struct build_id_search {
    unsigned char *bytes;
    int capacity;
    int length;
};

static int notes_of_executable(struct dl_phdr_info *info, size_t size, void *data) {
    (void)size;
    struct build_id_search *search = data;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *header = &info->dlpi_phdr[i];
        if (header->p_type != PT_NOTE) continue;
        const unsigned char *notes = (const unsigned char *)(info->dlpi_addr + header->p_vaddr);
        size_t offset = 0;
        while (offset + sizeof(ElfW(Nhdr)) <= header->p_memsz) {
            const ElfW(Nhdr) *note = (const ElfW(Nhdr) *)(notes + offset);
            size_t name = ((size_t)note->n_namesz + 3) & ~(size_t)3;
            size_t descriptor = ((size_t)note->n_descsz + 3) & ~(size_t)3;
            size_t end = offset + sizeof(*note) + name + descriptor;
            if (end > header->p_memsz) break;
            const unsigned char *text = notes + offset + sizeof(*note);
            if (note->n_type == NT_GNU_BUILD_ID && note->n_namesz == 4 && memcmp(text, "GNU", 4) == 0) {
                int length = note->n_descsz < (size_t)search->capacity ? (int)note->n_descsz : search->capacity;
                memcpy(search->bytes, text + name, (size_t)length);
                search->length = length;
                return 1;
            }
            offset = end;
        }
    }
    // The first object visited is the executable: the libraries' IDs are not its.
    return 1;
}

int edshim_build_id(unsigned char *bytes, int capacity) {
    struct build_id_search search = { bytes, capacity, 0 };
    dl_iterate_phdr(notes_of_executable, &search);
    return search.length;
}
