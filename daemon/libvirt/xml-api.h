/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <libxml/parser.h>
#include <libxml/parserInternals.h>
#include <libxml/tree.h>
#include <libxml/xmlerror.h>
#include <libxml/xmlsave.h>
#include <libxml/xpath.h>
#include <libxml/xpathInternals.h>

/* The libxml2 functions domain-xml.c calls, taken from libxml2's library
 * when a first document is read or written rather than linked: libxml2,
 * with the ICU and C++ runtime it pulls in, cost every start of the
 * daemon and the hook several milliseconds, and most starts read no XML.
 * Once loaded it stays loaded (libvirt, when loaded, shares it). */

#define XML_API_LIBRARY "libxml2.so.2"

#ifdef LIBXML_THREAD_ALLOC_ENABLED
#error "libxml2's allocator is per thread here: xmlFree is no variable to look up"
#endif

/* Functions: the field is the name without its "xml". */
#define XML_API_FUNCTIONS(X) \
        X(BufferContent) X(BufferCreate) X(BufferFree) X(BufferLength) X(CreateMemoryParserCtxt) \
        X(CtxtUseOptions) X(DocGetRootElement) X(DocSetRootElement) X(FirstElementChild) X(FreeDoc) \
        X(FreeParserCtxt) X(GetLineNo) X(GetNoNsProp) X(InitParser) X(NewChild) X(NewDoc) X(NewDocNode) \
        X(NewProp) X(NextElementSibling) X(NodeDump) X(NodeGetContent) X(ParseDocument) X(SaveClose) \
        X(SaveDoc) X(SaveToBuffer) X(SetProp) X(SetStructuredErrorFunc) X(StopParser) \
        X(XPathEvalExpression) X(XPathFreeContext) X(XPathFreeObject) X(XPathNewContext) X(XPathRegisterNs)

/* Per-thread globals, which the headers reach through a function
 * returning the calling thread's copy: the field is that function. */
#define XML_API_THREAD_GLOBALS(X) X(StructuredError) X(StructuredErrorContext)

typedef struct XmlApi {
#define XML_API_FIELD(f) __typeof__(xml##f) *f;
        XML_API_FUNCTIONS(XML_API_FIELD)
#undef XML_API_FIELD
#define XML_API_GLOBAL_FIELD(f) __typeof__(__xml##f) *f;
        XML_API_THREAD_GLOBALS(XML_API_GLOBAL_FIELD)
#undef XML_API_GLOBAL_FIELD
        /* xmlFree is a variable holding the deallocator (one for all
         * threads in libxml2's default build): call (*Free)(p). */
        xmlFreeFunc *Free;
} XmlApi;

/* libxml2's functions, loaded (and its parser initialized) on the first
 * call from any thread; NULL if libxml2 cannot be loaded, and *ret_error
 * (if not NULL) says why, naming the library. */
const XmlApi *xml_api(char **ret_error);

/* The table filled from library, loaded anew (and, on success, kept
 * loaded); to be freed with g_free(). What xml_api() does once, without
 * initializing the parser: for tests of its failures. */
XmlApi *xml_api_load(const char *library, char **ret_error);
